// Secrets out of what is shown: a URL's password (REDIS_URL may carry the primary's) in messages,
// `fastcontainer config` and the banner.

/** The URL with its password as `***`; anything that is not a URL with a password, as it is. */
export function withoutPassword(url: string): string {
  if (!url.includes('@')) return url;
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
