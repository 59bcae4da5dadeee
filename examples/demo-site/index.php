<?php
// The demo tenant site: served by the fastcontainer/php image from this directory, mounted
// read-only at /var/www/html (the paper's DataPool).
header('Content-Type: text/html; charset=utf-8');
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>FastContainer demo</title></head>
<body>
<h1>Hello from the FastContainer demo site</h1>
<p>This page was rendered by PHP <?= htmlspecialchars(PHP_VERSION) ?> in container
<code><?= htmlspecialchars(gethostname()) ?></code>, started on demand by the dispatcher.</p>
<p>Host: <code><?= htmlspecialchars($_SERVER['HTTP_HOST'] ?? '') ?></code>,
forwarded for <code><?= htmlspecialchars($_SERVER['HTTP_X_FORWARDED_FOR'] ?? '') ?></code>.</p>
</body>
</html>
