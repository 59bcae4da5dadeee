import type { Static } from '@sinclair/typebox';
import { Type } from '@sinclair/typebox';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { AppSpecSchema } from '../../src/cmdb/app-schema.js';
import type { AppEvent, AppSpec, ComputeHost, ContainerEntry, ContainerStats } from '../../src/cmdb/types.js';
import type { HostView } from '../../src/coreapi/hosts.js';
import { openApiDocument, openApiPath } from '../../src/coreapi/openapi.js';
import { AppEventSchema, ComputeHostSchema, ContainerEntrySchema, ContainerStatsSchema, HostViewSchema } from '../../src/coreapi/schemas.js';

/** True only when A and B are the same type (each assignable to the other, exactly). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

describe('the CMDB\'s types are the schemas\' (declared once)', () => {
  // ContainerEntry as answered lacks specHash: it digests secret values (api.ts, publicEntry).
  it('AppSpec is the schema\'s Static type; the response bodies equal the CMDB\'s interfaces', () => {
    // Checked by the typecheck (tsc): a field added to one and not the other fails it.
    const checks: [Equals<AppSpec, Static<typeof AppSpecSchema>>, Equals<Omit<ContainerEntry, 'specHash'>, Static<typeof ContainerEntrySchema>>, Equals<ContainerStats, Static<typeof ContainerStatsSchema>>,
      Equals<ComputeHost, Static<typeof ComputeHostSchema>>, Equals<AppEvent, Static<typeof AppEventSchema>>, Equals<HostView, Static<typeof HostViewSchema>>] = [true, true, true, true, true, true];
    expect(checks.every((c) => c)).toBe(true);
    expectTypeOf<Equals<ContainerEntry, Static<typeof ComputeHostSchema>>>().toEqualTypeOf<false>();
  });
});

describe('openApiDocument', () => {
  it('turns :params into {params}', () => {
    expect(openApiPath('/v1/apps/:name/containers')).toBe('/v1/apps/{name}/containers');
  });
  it('lists a route registered without a RouteDoc as undocumented, and marks it', () => {
    const { document, undocumented } = openApiDocument([
      { method: 'GET', name: '/v1/things/:id', write: false, open: false },
      { method: 'POST', name: '/v1/things', write: true, open: false, doc: { summary: 'Make a thing', body: Type.Object({ a: Type.String() }), responses: { 201: { description: 'Made.' } } } },
    ]);
    expect(undocumented).toEqual(['GET /v1/things/:id']);
    const paths = document.paths as Record<string, Record<string, Record<string, unknown>>>;
    expect(paths['/v1/things/{id}']?.get?.['x-undocumented']).toBe(true);
    const post = paths['/v1/things']?.post as Record<string, any>;
    expect(post.security).toEqual([{ adminToken: [] }]);
    // A body brings the problems of bodies; a write, the 403 of the read token.
    expect(Object.keys(post.responses).sort()).toEqual(['201', '400', '401', '403', '413', '500']);
    expect(post.responses['400'].description).toContain('FC_ERR_INVALID_FIELD');
  });
});
