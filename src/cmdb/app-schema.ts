// The app spec, declared once (TypeBox): its TypeScript type (AppSpec in types.ts is
// Static<typeof AppSpecSchema>), its JSON Schema (the CoreAPI's OpenAPI document) and the shape
// the CoreAPI validates (coreapi/app-spec.ts layers on it what JSON Schema cannot say: volume
// roots, hostnames that are addresses, secrets not also in env, bounds that depend on other
// fields). This is the stored form: numbers in their unit; the CoreAPI also takes "256m" for
// memory and "90s" for durations, and stores them converted.

import { Type, type TSchema } from '@sinclair/typebox';

export const APP_NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
/** One DNS label; a hostname is labels joined by dots (and more, see coreapi/app-spec.ts). */
export const HOST_LABEL_PATTERN = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
export const IMAGE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._\\-/:@]{0,254}$';
export const ENV_KEY_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
/** No NUL: it ends a C string, so Docker and exec cannot carry it. */
export const NO_NUL_PATTERN = '^[^\\u0000]*$';
/**
 * Longest env value, secret or command argument. Linux refuses an exec whose single argument or
 * environment string is over 128 KiB (MAX_ARG_STRLEN): past it every start would fail.
 */
export const MAX_STRING = 32 * 1024;
export const MIN_MEMORY = 6 * 1024 * 1024;
export const MAX_MEMORY = 256 * 1024 ** 3;
export const WEEK_SECONDS = 7 * 24 * 3600;

const cString = (o: { description?: string } = {}) => Type.String({ maxLength: MAX_STRING, pattern: NO_NUL_PATTERN, ...o });
const envMap = (description: string) =>
  Type.Record(Type.String({ pattern: ENV_KEY_PATTERN }), cString(), { maxProperties: 128, additionalProperties: false, description });
const nullable = <T extends TSchema>(t: T, description: string) => Type.Union([t, Type.Null()], { description });

export const AppSpecSchema = Type.Object(
  {
    name: Type.String({ pattern: APP_NAME_PATTERN, description: 'The app\'s name: 1-63 lower-case letters, digits and inner hyphens; it cannot change.', examples: ['my-blog'] }),
    hostnames: Type.Array(Type.String({ maxLength: 253, pattern: `^${HOST_LABEL_PATTERN}(\\.${HOST_LABEL_PATTERN})*$` }), {
      minItems: 1, maxItems: 32, uniqueItems: true,
      description: 'The Host names the proxy routes to this app, lower-cased, without a trailing dot: no port, no wildcard, not localhost, not an IP address.',
    }),
    image: Type.String({ pattern: IMAGE_PATTERN, description: 'The Docker image reference its containers start from.', examples: ['fastcontainer/php', 'repo/app:1.2'] }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'The TCP port the app listens on inside its container.' }),
    command: nullable(Type.Array(cString(), { minItems: 1, maxItems: 64 }), 'argv run instead of the image\'s entrypoint and command; null keeps the image\'s.'),
    env: envMap('Environment variables of its containers (at most 128).'),
    secrets: envMap(
      'Env values the CoreAPI never shows (reads give their keys as secretKeys); write-only. Kept in the app\'s CMDB record like the rest, because every dispatcher needs them to start containers: whoever can read the CMDB can read them.',
    ),
    volumes: Type.Array(Type.String({ maxLength: 4096, pattern: NO_NUL_PATTERN }), {
      maxItems: 16, description: 'Bind mounts "/host/path:/container/path[:ro|rw]"; host paths lie under the volume roots (FC_VOLUME_ROOTS).',
    }),
    cpus: Type.Number({ minimum: 0.01, maximum: 64, description: 'CPU cores per container, e.g. 0.3 for 30% of one core (a CFS quota).' }),
    memory: Type.Integer({ minimum: MIN_MEMORY, maximum: MAX_MEMORY, description: 'Memory limit per container, bytes (also given as "256m", "1g").' }),
    lifespan: Type.Integer({ minimum: 1, maximum: WEEK_SECONDS, description: 'Seconds a container lives before it is replaced (make before break) and removed (also given as "90s", "10m", "1h").' }),
    minContainers: Type.Integer({ minimum: 0, maximum: 1000, description: 'Containers kept running even without traffic; at most maxContainers.' }),
    maxContainers: Type.Integer({ minimum: 1, maximum: 1000, description: 'Most live containers of the app.' }),
    readinessPath: nullable(
      Type.String({ pattern: '^/[\\x21-\\x7e]{0,1023}$' }),
      'When set, a starting container is ready once GET on this path answers below 500; null: once its port accepts connections.',
    ),
    maxCpus: Type.Number({ minimum: 0.01, maximum: 64, description: 'CPU cores a container may be scaled up to, live; at least cpus; equal to cpus turns scale-up off.' }),
    latencyTargetMs: Type.Integer({ minimum: 1, maximum: 600_000, description: 'Latency, milliseconds to the end of the answer, above which the autoscaler adds capacity (also given as "500ms", "2s").' }),
    idleTimeout: Type.Integer({ minimum: 1, maximum: WEEK_SECONDS, description: 'Seconds without a request after which a container above minContainers is drained (also given as "90s", "5m").' }),
    autoscale: Type.Boolean({ description: 'Whether the autoscaler acts on this app (scale up/down/out/in); lifespans apply regardless.' }),
    freezeAfter: Type.Integer({ minimum: 0, maximum: WEEK_SECONDS, description: 'Seconds without a request after which a container is frozen (cgroup freezer); 0: never (also given as "30s", "5m").' }),
    user: nullable(Type.String({ pattern: '^[0-9]{1,10}(:[0-9]{1,10})?$' }), 'Numeric "uid[:gid]" the container runs as, not 0; null: the image\'s user, unless that is root.'),
    readOnlyRootfs: Type.Boolean({ description: 'The container\'s root file system is read-only (/tmp and /run are tmpfs).' }),
    upstreamTimeout: Type.Optional(
      nullable(Type.Integer({ minimum: 1, maximum: 3600 }), 'Seconds the app may take to start an answer before the client gets 504; null: the proxy\'s FC_UPSTREAM_TIMEOUT (also given as "90s", "2m").'),
    ),
    maxConcurrency: Type.Optional(
      nullable(Type.Integer({ minimum: 1, maximum: 65_536 }), 'Most requests a proxy forwards to the app at once (more wait in a bounded queue); null: FC_APP_CONCURRENCY.'),
    ),
    httpsRedirect: Type.Optional(
      Type.Boolean({ description: 'Plain http:// requests are redirected (308) to https:// at the proxy (needs its HTTPS listener, FC_TLS_DIR); absent: false.' }),
    ),
    egress: Type.Optional(
      Type.Union([Type.Literal('open'), Type.Literal('closed')], {
        description: 'Whether its containers may open connections to the internet ("open", the default; absent in apps stored before the field existed) or only to the services the operator lists for it ("closed").',
      }),
    ),
  },
  { additionalProperties: false, description: 'An app: what a tenant runs, as the CoreAPI stores it.' },
);

export type AppField = keyof typeof AppSpecSchema.properties;
export const appFields = Object.keys(AppSpecSchema.properties) as AppField[];
