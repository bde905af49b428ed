/**
 * A spec's workloads as plain manifests, and a spec rewritten with other workloads: what the harness ships into node
 * containers (one self-contained file) and what `kubectl apply`/`delete` write back.
 */
import { isSeq, parseAllDocuments, parseDocument } from 'yaml';
import type { SpecDocument } from './spec.js';

/** Each workload of the spec, in order, with every `- file: X` entry replaced by the manifests X holds. */
export function workloadManifests(document: SpecDocument): unknown[] {
  const workloads = parseDocument(document.text).get('workloads');
  if (!isSeq(workloads)) return [];
  return workloads.toJSON().flatMap((entry: unknown) => {
    const file = (entry as { file?: unknown } | null)?.file;
    if (typeof file !== 'string') return [entry];
    const text = document.files[file];
    if (text === undefined) throw new Error(`${file}: not part of the spec document`);
    return parseAllDocuments(text)
      .filter((manifest) => manifest.contents !== null)
      .map((manifest) => manifest.toJS() as unknown);
  });
}

/** The spec's text with `workloads` set to these manifests, written inline; everything else, comments too, kept. */
export function withWorkloads(text: string, manifests: readonly unknown[]): string {
  const document = parseDocument(text);
  document.set('workloads', document.createNode(manifests));
  return document.toString();
}
