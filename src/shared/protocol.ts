// The contract between the UserProxy and the dispatchers, which talk over HTTP only.

/** Request header naming the container entry a proxied request is for. */
export const CONTAINER_HEADER = 'x-fc-container';

/** Response header carrying an FcError code, so the proxy can tell "container gone" from an app's 503. */
export const ERROR_HEADER = 'x-fc-error';
