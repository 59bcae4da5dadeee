// Apps as a cache holds them, with what 100,000 of them have in common stored once. An app read
// from the CMDB (JSON.parse, structuredClone) has its own empty `env` object, its own empty
// lists and its own copy of a popular image's name: about 90 of its 620 bytes. The cache
// shares those instead; the shared objects are frozen, so that a caller changing one app's `env`
// in place (none should) fails loudly rather than changing every app's.

import type { App } from './types.js';

const EMPTY_ENV: Record<string, string> = Object.freeze({}) as Record<string, string>;
const EMPTY_LIST: string[] = Object.freeze([]) as unknown as string[];

/** Distinct image names kept; past this many (unheard of), new ones are simply not shared. */
const MAX_IMAGES = 10_000;
const images = new Map<string, string>();

function sharedImage(image: string): string {
  const known = images.get(image);
  if (known !== undefined) return known;
  if (images.size < MAX_IMAGES) images.set(image, image);
  return image;
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

/** Shares `app`'s empty env, volumes and command and its image name; `app` must be the caller's own (a fresh parse or copy). */
export function compactApp(app: App): App {
  if (typeof app.env === 'object' && app.env !== null && app.env !== EMPTY_ENV && isEmpty(app.env)) app.env = EMPTY_ENV;
  if (typeof app.secrets === 'object' && app.secrets !== null && app.secrets !== EMPTY_ENV && isEmpty(app.secrets)) app.secrets = EMPTY_ENV;
  if (Array.isArray(app.volumes) && app.volumes.length === 0) app.volumes = EMPTY_LIST;
  if (Array.isArray(app.command) && app.command.length === 0) app.command = EMPTY_LIST;
  if (typeof app.image === 'string') app.image = sharedImage(app.image);
  return app;
}
