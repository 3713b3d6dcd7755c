import { readFile } from 'node:fs/promises';

/**
 * Summarises a V8 .heapsnapshot: self size and count by kind of object (constructor name for
 * objects, "closure", "string", "array", ...). `diffHeaps` subtracts a baseline taken before
 * the sessions existed and divides by their number: what one session costs, by kind.
 */
interface Snapshot {
  snapshot: {
    meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export type HeapGroups = Map<string, { count: number; bytes: number }>;

export async function heapGroups(file: string): Promise<HeapGroups> {
  const data = JSON.parse(await readFile(file, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = data.snapshot.meta.node_types[0];
  const kindOf = (i: number) => {
    const type = types[data.nodes[i + typeAt]!] ?? '?';
    const name = data.strings[data.nodes[i + nameAt]!] ?? '?';
    return type === 'object' || type === 'native'
      ? `${type === 'native' ? 'native ' : ''}${name}`
      : type === 'closure'
        ? `closure ${name || '(anonymous)'}`
        : `(${type})`;
  };
  // V8's internal arrays (property and element stores, hash tables, closure contexts) say little on
  // their own: name them after the first object that holds them and the field it holds them in.
  const owners = new Map<number, string>();
  const edgeFields = data.snapshot.meta.edge_fields;
  const edgeWidth = edgeFields.length;
  const edgeTypeAt = edgeFields.indexOf('type');
  const edgeNameAt = edgeFields.indexOf('name_or_index');
  const edgeToAt = edgeFields.indexOf('to_node');
  const edgeTypes = data.snapshot.meta.edge_types[0];
  const edgeCountAt = fields.indexOf('edge_count');
  let edge = 0;
  for (let i = 0; i < data.nodes.length; i += width) {
    const count = data.nodes[i + edgeCountAt]!;
    for (let e = 0; e < count; e++, edge += edgeWidth) {
      const to = data.edges[edge + edgeToAt]!;
      if (owners.has(to) || types[data.nodes[to + typeAt]!] !== 'array') continue;
      const edgeType = edgeTypes[data.edges[edge + edgeTypeAt]!];
      if (edgeType === 'weak' || edgeType === 'shortcut') continue;
      const nameOrIndex = data.edges[edge + edgeNameAt]!;
      const label = edgeType === 'element' || edgeType === 'hidden' ? '[]' : (data.strings[nameOrIndex] ?? '?');
      owners.set(to, `${kindOf(i)}.${label}`);
    }
  }
  const groups: HeapGroups = new Map();
  for (let i = 0; i < data.nodes.length; i += width) {
    const kind = kindOf(i);
    const key = kind === '(array)' ? `(array) in ${owners.get(i) ?? '?'}` : kind;
    const group = groups.get(key) ?? { count: 0, bytes: 0 };
    group.count++;
    group.bytes += data.nodes[i + sizeAt]!;
    groups.set(key, group);
  }
  return groups;
}

export interface HeapDiffRow {
  kind: string;
  perSession: { count: number; bytes: number };
}

export function diffHeaps(before: HeapGroups, after: HeapGroups, sessions: number, top = 20): { bytesPerSession: number; rows: HeapDiffRow[] } {
  const rows: HeapDiffRow[] = [];
  let total = 0;
  for (const [kind, a] of after) {
    const b = before.get(kind) ?? { count: 0, bytes: 0 };
    const bytes = (a.bytes - b.bytes) / sessions;
    total += bytes;
    rows.push({ kind, perSession: { count: Math.round(((a.count - b.count) / sessions) * 100) / 100, bytes: Math.round(bytes) } });
  }
  rows.sort((x, y) => y.perSession.bytes - x.perSession.bytes);
  return { bytesPerSession: Math.round(total), rows: rows.slice(0, top) };
}
