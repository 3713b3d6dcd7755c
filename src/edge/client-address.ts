import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';

/** Who asked and how, as Fastify's `request.ip`, `.protocol` and `.host` tell it. */
export interface ClientAddress {
  ip: string;
  protocol: string;
  host: string;
  /**
   * The X-Forwarded-For the upstream gets: the client, then each proxy TRUST_PROXY believes,
   * then the one that connected. What an untrusted client wrote there itself is left out.
   */
  forwardedFor: string;
}

/** forwardedFor from proxy-addr's list (Fastify's `request.ips`): the connected address first, the client last. */
export const forwardedForOf = (addresses: readonly string[]) => [...addresses].reverse().join(', ');

export type TrustProxy = boolean | number | string[];

/** A hop count n trusts the n nearest proxies (proxy-addr's rule). */
export const trustHops = (hops: number) => (_address: string, hop: number) => hop < hops;

const lastOf = (value: string) => value.slice(value.lastIndexOf(',') + 1).trim();

/**
 * Reads a raw request's client address under the same TRUST_PROXY as Fastify (fastify/lib/request.js,
 * with the same proxy-addr): for the edge's front door, which answers before Fastify makes a request
 * of it, and must tell the upstream the same X-Forwarded-* as Fastify's route would.
 */
export function clientAddressOf(trustProxy: TrustProxy): (request: IncomingMessage) => ClientAddress {
  if (trustProxy === false) {
    return (request) => ({
      ip: request.socket.remoteAddress ?? '',
      protocol: (request.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
      host: request.headers.host ?? '',
      forwardedFor: request.socket.remoteAddress ?? '',
    });
  }
  const trusts = trustProxy === true ? () => true : typeof trustProxy === 'number' ? trustHops(trustProxy) : proxyAddr.compile(trustProxy);
  return (request) => {
    const addresses = proxyAddr.all(request, trusts);
    const nearTrusted = trusts(request.socket.remoteAddress ?? '', 0);
    const forwardedProto = request.headers['x-forwarded-proto'];
    const forwardedHost = request.headers['x-forwarded-host'];
    return {
      ip: addresses[addresses.length - 1] ?? '',
      protocol: forwardedProto && nearTrusted ? lastOf(String(forwardedProto)) : (request.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
      host: forwardedHost && nearTrusted ? lastOf(String(forwardedHost)) : (request.headers.host ?? ''),
      forwardedFor: forwardedForOf(addresses),
    };
  };
}
