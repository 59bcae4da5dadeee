import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCatalog, FcError, invalidFields } from '../../src/shared/errors.js';

describe('FcError', () => {
  it('is a problem document with a stable code and status', () => {
    const p = new FcError('FC_ERR_APP_NOT_FOUND', 'no app is named "x"', { app: 'x' }).toProblem('/v1/apps/x');
    expect(p).toEqual({ type: 'urn:fastcontainer:error:FC_ERR_APP_NOT_FOUND', title: 'App not found', status: 404, detail: 'no app is named "x"', code: 'FC_ERR_APP_NOT_FOUND', instance: '/v1/apps/x', app: 'x' });
  });

  it('gives retryable errors a Retry-After and others none', () => {
    expect(new FcError('FC_ERR_QUEUE_FULL', 'x').retryAfter).toBe(1);
    expect(new FcError('FC_ERR_IMAGE_NOT_FOUND', 'x', {}, { retryAfter: 5 }).retryAfter).toBe(5);
    expect(new FcError('FC_ERR_INVALID_FIELD', 'x').retryAfter).toBeUndefined();
  });

  it('names the first bad field at the top and lists them all', () => {
    const err = invalidFields([{ field: 'cpus', value: -1, allowed: '0.01-64' }, { field: 'port', value: 0, allowed: '1-65535' }]);
    expect(err.toProblem()).toMatchObject({ status: 400, field: 'cpus', value: -1, allowed: '0.01-64', errors: [{ field: 'cpus' }, { field: 'port' }] });
    expect(err.message).toBe('cpus: -1 is not allowed (allowed: 0.01-64); port: 0 is not allowed (allowed: 1-65535)');
  });
});

describe('the README error table', () => {
  it('lists every error code with its status', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const [code, kind] of Object.entries(errorCatalog)) {
      expect(readme, `README lists ${code}`).toContain(`| \`${code}\` | ${kind.status} |`);
    }
  });
});
