// Which user a container runs as: never root unless the operator allows it for the image
// (FC_ROOT_IMAGES). A pure decision on the app's `user`, the image's configured user (docker image
// inspect: Config.User) and the allow-list.
//
//   app user "1000"        -> "1000:1000"  (a uid alone gets its own number as gid, never gid 0)
//   app user "1000:50"     -> "1000:50"
//   image user "www-data"  -> the image's  (a name other than root: resolved in the image)
//   image user "" or "0" or "root[:x]", image not allowed -> "65534:65534" (nobody:nogroup)
//   image user "" and image in FC_ROOT_IMAGES             -> the image's (root)
//   image user "33:0"      -> "33:65534"   (not in group root either)
//
// A user name is resolved by the engine in the image's own /etc/passwd. Images come from the
// operator (the engine never pulls a tenant's), so a name is taken as the non-root user it reads as.

export const NOBODY = '65534:65534';

/** What to pass as the container's User; undefined keeps the image's. */
export function containerUser(o: { appUser: string | null; imageUser: string; image: string; rootImages: readonly string[] }): string | undefined {
  if (o.appUser !== null) return o.appUser.includes(':') ? o.appUser : `${o.appUser}:${o.appUser}`;
  const [user = '', group] = o.imageUser.trim().split(':');
  const root = (id: string) => id === '0' || id === 'root';
  if (user === '' || root(user)) return isRootAllowed(o.image, o.rootImages) ? undefined : NOBODY;
  if (group !== undefined && root(group)) return `${user}:65534`;
  return undefined;
}

/** `image` is in the allow-list, a missing tag read as :latest. */
export function isRootAllowed(image: string, rootImages: readonly string[]): boolean {
  const norm = (ref: string) => (ref.includes('@') || /:[^/]+$/.test(ref) ? ref : `${ref}:latest`);
  return rootImages.some((r) => norm(r) === norm(image));
}
