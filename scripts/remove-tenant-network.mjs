#!/usr/bin/env node
// Removes a dispatcher's tenant network and its isolation rules (iptables), for a host whose
// dispatcher cannot do it itself (killed, or gone for good): the network only if that host's
// dispatcher made it and no container is left on it. Needs the build (npm run build) and root.
//
//   node scripts/remove-tenant-network.mjs <network> <host id>
import Docker from 'dockerode';
import { removeTenantNetwork } from '../dist/dispatcher/runtime/tenant-network.js';

const [network, hostId] = process.argv.slice(2);
if (network === undefined || hostId === undefined) {
  console.error('usage: node scripts/remove-tenant-network.mjs <network> <host id>');
  process.exit(2);
}
const socketPath = new URL(process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').pathname;
await removeTenantNetwork(new Docker({ socketPath }), network, hostId);
