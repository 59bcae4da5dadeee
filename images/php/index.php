<?php
// Default page of the fastcontainer/php image. Tenant sites are mounted over
// /var/www/html and replace this file.
header('Content-Type: text/html; charset=utf-8');
$host = htmlspecialchars(gethostname(), ENT_QUOTES);
$ver = htmlspecialchars(PHP_VERSION, ENT_QUOTES);
?>
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello from FastContainer PHP</title></head>
<body>
<h1>Hello from FastContainer PHP</h1>
<p>Hostname: <code><?= $host ?></code></p>
<p>PHP version: <code><?= $ver ?></code></p>
</body>
</html>
