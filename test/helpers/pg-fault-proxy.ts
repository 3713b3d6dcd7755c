import net from 'node:net';
import { CANCEL_REQUEST, cstring, GSSENC_REQUEST, MessageReader, readBind, SSL_REQUEST } from './pg-wire.js';

/**
 * A TCP proxy between postgres.js and a real PostgreSQL that fails a COMMIT the way a network
 * would, so tests of the unhappy path fail PostgreSQL itself instead of mocking it (DESIGN.md,
 * "Lessons already paid for"). Written by hand: no maintained npm package injects faults at
 * PostgreSQL message boundaries, and a generic TCP fault proxy (toxiproxy and the like) cannot
 * tell the answer to a COMMIT from any other bytes.
 *
 * It reads both directions of the wire protocol (v3) only as far as it must: message
 * boundaries, statement texts, text parameters, Sync / ReadyForQuery pairs and
 * CommandComplete tags. Everything else passes through byte for byte.
 */

export type PgFault =
  /** The COMMIT reaches the server and commits; the connection dies before the answer is forwarded. */
  | 'lose_commit_answer'
  /** The connection dies instead of forwarding the COMMIT: the transaction never commits. */
  | 'kill_before_commit';

export interface PgFaultRule {
  fault: PgFault;
  /** Only a transaction with a statement or text-format parameter containing this, e.g. a session id. */
  match?: string;
  /** How many COMMITs to fail before the rule disarms itself; 1 when unset. */
  times?: number;
}

export interface ArmedPgFault {
  /** Resolves once the fault has happened `times` times (never, if disarmed first). */
  fired: Promise<void>;
}

export interface PgFaultCounts {
  connectionsAccepted: number;
  connectionsOpen: number;
  /** COMMIT statements clients executed through the proxy, failed ones included. */
  commitsSeen: number;
  faultsFired: number;
}

export interface PgFaultProxy {
  /** The target URL, pointing at the proxy instead. */
  url: string;
  arm(rule: PgFaultRule): ArmedPgFault;
  /** Forgets every armed rule; a lost answer already under way is still lost. */
  disarm(): void;
  counts(): PgFaultCounts;
  /** Cuts every open connection at once, as a network failure would. */
  killAllConnections(): void;
  close(): Promise<void>;
}

interface ArmedRule {
  fault: PgFault;
  match: string | undefined;
  commitsLeft: number;
  faultsLeft: number;
  resolveFired: () => void;
}

/** One client connection and its own connection to the server. */
interface Link {
  client: net.Socket;
  server: net.Socket;
  statements: Map<string, string>;
  /** Per portal: the bound statement's text, then its text-format parameter values. */
  portals: Map<string, string[]>;
  /** Texts executed since BEGIN; null outside an explicit transaction. */
  transactionTexts: string[] | null;
  /** Sync and Query messages forwarded: each is answered by exactly one ReadyForQuery. */
  batchesSent: number;
  /** ReadyForQuery messages received after the one that ends the startup. */
  batchesAnswered: number;
  startedUp: boolean;
  /** The batch holding a COMMIT whose answer must be lost, and the rule that chose it. */
  doomed: { batch: number; rule: ArmedRule } | null;
  cut: boolean;
}

type Verdict = 'forward' | 'drop' | 'cut';

const BEGIN = /^\s*(begin|start\s+transaction)\b/i;
// Whole statements only: ROLLBACK TO SAVEPOINT and COMMIT PREPARED do not end this transaction.
const COMMIT = /^\s*(commit|end)(\s+(work|transaction))?\s*;?\s*$/i;
const ROLLBACK = /^\s*(rollback|abort)(\s+(work|transaction))?\s*;?\s*$/i;

/** Listens on 127.0.0.1 at a port of the system's choosing; every connection goes on to `target`. */
export async function startPgFaultProxy(options: { target: string }): Promise<PgFaultProxy> {
  const target = new URL(options.target);
  const rules: ArmedRule[] = [];
  const links = new Set<Link>();
  const counts = { connectionsAccepted: 0, commitsSeen: 0, faultsFired: 0 };

  function fired(rule: ArmedRule) {
    counts.faultsFired++;
    if (--rule.faultsLeft === 0) rule.resolveFired();
  }

  /**
   * Ends both sockets after what was already forwarded (so answers before the fault still
   * arrive) and forwards nothing more. Both ends see the connection close, as after a cut cable.
   */
  function cut(link: Link) {
    if (link.cut) return;
    link.cut = true;
    links.delete(link);
    for (const socket of [link.client, link.server]) socket.end(() => socket.destroy());
  }

  /** Judges a statement as the server is about to run it: Execute or Query. */
  function execute(link: Link, texts: string[]): Verdict {
    const statement = texts[0] ?? '';
    if (BEGIN.test(statement)) link.transactionTexts = [];
    else if (ROLLBACK.test(statement)) link.transactionTexts = null;
    else if (!COMMIT.test(statement)) link.transactionTexts?.push(...texts);
    else {
      counts.commitsSeen++;
      const transactionTexts = link.transactionTexts ?? [];
      link.transactionTexts = null;
      const rule = rules.find(({ match }) => match === undefined || transactionTexts.some((text) => text.includes(match)));
      if (!rule) return 'forward';
      if (--rule.commitsLeft === 0) rules.splice(rules.indexOf(rule), 1);
      if (rule.fault === 'kill_before_commit') {
        fired(rule);
        return 'cut';
      }
      link.doomed = { batch: link.batchesSent, rule };
    }
    return 'forward';
  }

  function clientVerdict(link: Link, reader: MessageReader, message: Buffer): Verdict {
    if (!reader.typed) {
      const code = message.readInt32BE(4);
      // postgres.js asks for none unless `ssl` is set; refusing keeps the stream readable.
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        link.client.write('N');
        return 'drop';
      }
      // A cancel request is a whole connection of its own; the server hangs up after it.
      if (code !== CANCEL_REQUEST) reader.typed = true;
      return 'forward';
    }
    switch (String.fromCharCode(message[0]!)) {
      case 'P': {
        const [name, afterName] = cstring(message, 5);
        link.statements.set(name, cstring(message, afterName)[0]);
        return 'forward';
      }
      case 'B': {
        const bind = readBind(message);
        link.portals.set(bind.portal, [link.statements.get(bind.statement) ?? '', ...bind.values]);
        return 'forward';
      }
      case 'E':
        return execute(link, link.portals.get(cstring(message, 5)[0]) ?? []);
      case 'Q': {
        const verdict = execute(link, [cstring(message, 5)[0]]);
        link.batchesSent++;
        return verdict;
      }
      case 'S':
        link.batchesSent++;
        return 'forward';
      default:
        return 'forward';
    }
  }

  function serverVerdict(link: Link, message: Buffer): Verdict {
    const type = String.fromCharCode(message[0]!);
    if (type !== 'Z' && type !== 'C') return 'forward';
    // The ReadyForQuery that ends the startup answers no Sync.
    if (!link.startedUp) {
      link.startedUp = type === 'Z';
      return 'forward';
    }
    const doomed = link.doomed;
    const inDoomedBatch = doomed !== null && doomed.batch === link.batchesAnswered;
    if (type === 'Z') link.batchesAnswered++;
    if (!inDoomedBatch) return 'forward';
    // A COMMIT that failed (error, or ROLLBACK in an aborted transaction) loses its answer at the batch end.
    if (type === 'C' && !cstring(message, 5)[0].startsWith('COMMIT')) return 'forward';
    fired(doomed.rule);
    return 'cut';
  }

  /** Forwards each whole message in arrival order until a verdict cuts the connection. */
  function pump(link: Link, reader: MessageReader, chunk: Buffer, to: net.Socket, verdictOf: (message: Buffer) => Verdict) {
    if (link.cut) return;
    reader.push(chunk);
    to.cork();
    try {
      for (let message = reader.next(); message; message = reader.next()) {
        const verdict = verdictOf(message);
        if (verdict === 'cut') return cut(link);
        if (verdict === 'forward') to.write(message);
      }
    } finally {
      to.uncork();
    }
  }

  function relay(client: net.Socket) {
    counts.connectionsAccepted++;
    const server = net.connect(Number(target.port || 5432), target.hostname);
    const link: Link = {
      client,
      server,
      statements: new Map(),
      portals: new Map(),
      transactionTexts: null,
      batchesSent: 0,
      batchesAnswered: 0,
      startedUp: false,
      doomed: null,
      cut: false,
    };
    links.add(link);
    const fromClient = new MessageReader(false);
    const fromServer = new MessageReader(true);
    client.on('data', (chunk: Buffer) => pump(link, fromClient, chunk, server, (m) => clientVerdict(link, fromClient, m)));
    server.on('data', (chunk: Buffer) => pump(link, fromServer, chunk, client, (m) => serverVerdict(link, m)));
    for (const socket of [client, server]) {
      // Without the proxy, one side going away is the other side's closed connection.
      socket.on('error', () => cut(link));
      socket.on('close', () => cut(link));
    }
  }

  const listener = net.createServer(relay);
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });
  const url = new URL(options.target);
  url.hostname = '127.0.0.1';
  url.port = String((listener.address() as net.AddressInfo).port);

  function killAllConnections() {
    for (const link of [...links]) {
      cut(link);
      link.client.destroy();
      link.server.destroy();
    }
  }

  return {
    url: url.toString(),
    arm(rule) {
      let resolveFired = () => {};
      const firedPromise = new Promise<void>((resolve) => (resolveFired = resolve));
      const times = rule.times ?? 1;
      rules.push({ fault: rule.fault, match: rule.match, commitsLeft: times, faultsLeft: times, resolveFired });
      return { fired: firedPromise };
    },
    disarm: () => void rules.splice(0),
    counts: () => ({ ...counts, connectionsOpen: links.size }),
    killAllConnections,
    async close() {
      killAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
