// The CMDB's errors, made the same way by every Store implementation.

import { FcError } from '../shared/errors.js';

export const cmdbErrors = {
  appExists: (app: string) => new FcError('FC_ERR_APP_EXISTS', `app "${app}" already exists`, { app }),
  appNotFound: (app: string) => new FcError('FC_ERR_APP_NOT_FOUND', `no app is named "${app}"`, { app }),
  hostnameTaken: (hostname: string, owner: string) =>
    new FcError('FC_ERR_HOSTNAME_TAKEN', `hostname "${hostname}" is already served by app "${owner}"`, {
      field: 'hostnames', value: hostname, allowed: 'a hostname no other app serves', app: owner,
    }),
  maxContainers: (app: string, live: number, maxContainers: number, surge = 0) =>
    new FcError('FC_ERR_MAX_CONTAINERS', `app "${app}" already has ${live} live containers (maxContainers is ${maxContainers}${surge > 0 ? `, plus a surge of ${surge}` : ''})`, {
      app, live, maxContainers, ...(surge > 0 ? { surge } : {}),
    }),
  noComputeHost: (app: string, hostTimeoutMs: number) =>
    new FcError('FC_ERR_NO_COMPUTE_HOST', `no live compute host has room for another container of app "${app}" (none has sent a heartbeat in the last ${hostTimeoutMs} ms, or all are full or drained)`, { app }, { retryAfter: 5 }),
  unavailable: (cause: unknown) =>
    new FcError('FC_ERR_STORE_UNAVAILABLE', `the CMDB did not answer: ${cause instanceof Error ? cause.message : String(cause)}`, {}, { cause, retryAfter: 2 }),
};
