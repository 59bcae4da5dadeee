// Secrets out of what is shown: a URL's password (REDIS_URL may carry the primary's) in messages,
// `fastcontainer config` and the banner.

/**
 * The URL with its password as `***`; anything without a password, as it is. Text that does not
 * parse as a URL (a REDIS_URL the config refuses) still loses whatever stands between `//` and `@`.
 */
export function withoutPassword(url: string): string {
  if (!url.includes('@')) return url;
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
}
