/**
 * `apply -f` and `delete -f` for a static lab: there is no API server, so the lab's spec file is the cluster's store.
 * A change rewrites the spec's `workloads` (inline, so the file stands alone), then every node agent re-reads the
 * spec and rebuilds its node. In the compose labs the node containers share the spec through a volume, so every agent
 * reads the same file and computes the same cluster.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments } from 'yaml';
import {
  buildCluster,
  parseDeployments,
  parseSpecDocument,
  SpecError,
  withWorkloads,
  workloadManifests,
  type ClusterState,
  type SpecDocument,
} from '../calico/index.js';
import { specDigest } from '../node/api-protocol.js';
import { readSpecFile, resolveSpecPath } from './cluster-source.js';
import { agentFor, agentSocketPath, AgentError } from './commands/agent-client.js';
import type { Io } from './common.js';
import { ExitStatus, UsageError } from './errors.js';

const URL_PATTERN = /^https?:\/\//i;
/** Calico's install manifests, as the courses apply them: calico.yaml, or the operator's two. */
const CALICO_MANIFEST =
  /(projectcalico\.org|tigera\.io|projectcalico\/calico).*\/(calico|tigera-operator|custom-resources)[^/]*\.ya?ml$/i;

/**
 * A manifest by URL: the lab fetches nothing from the internet. Calico's own says in one line that Calico is built in
 * (what it would install runs in every node's agent) and changes nothing; any other is refused with what to do.
 */
function remoteManifest(url: string, verb: 'apply' | 'delete'): string {
  if (CALICO_MANIFEST.test(url)) {
    return (
      `ipip-lab: Calico is built into this lab (calico-node's IPAM, BGP and Felix run in every node's agent, etcd is ` +
      `its datastore): nothing to ${verb} from ${url}`
    );
  }
  throw new UsageError(
    `the lab fetches nothing from the internet: download ${url} and ${verb} the file (kubectl ${verb} -f FILE)`,
  );
}

/** A reload builds a few pods per node: seconds would mean the agent is stuck, not busy. */
const RELOAD_TIMEOUT_MS = 10_000;

/** What kubectl says about one object, as in `deployment.apps/hello-world created`. */
export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface ObjectKey {
  readonly namespace: string;
  readonly name: string;
}

function keyOf(manifest: unknown): ObjectKey {
  const metadata = (manifest as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
  return {
    name: String(metadata?.name),
    namespace: typeof metadata?.namespace === 'string' ? metadata.namespace : 'default',
  };
}

function sameKey(a: ObjectKey, b: ObjectKey): boolean {
  return a.name === b.name && a.namespace === b.namespace;
}

/** The manifests of a file as written, each checked to be a Deployment the lab can run, with kubectl's errors. */
function readManifests(file: string, verb: 'apply' | 'delete'): unknown[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'ENOENT' ? `the path "${file}" does not exist` : `cannot read "${file}": ${(error as Error).message}`,
    );
  }
  try {
    parseDeployments(text, file);
  } catch (error) {
    if (!(error instanceof SpecError)) throw error;
    const where = error.field === '' ? '' : `${error.field}: `;
    throw new UsageError(`error validating "${file}": ${where}${error.detail}`);
  }
  const manifests = parseAllDocuments(text)
    .filter((document) => document.contents !== null)
    .map((document) => document.toJS() as unknown);
  if (manifests.length === 0) throw new UsageError(`no objects passed to ${verb} (${file} holds none)`);
  return manifests;
}

export interface ManifestChange {
  readonly key: ObjectKey;
  readonly outcome: ApplyOutcome | 'deleted' | 'scaled' | 'not found';
}

export interface Plan {
  /** The spec's new text, or undefined when nothing changes. */
  readonly text: string | undefined;
  readonly changes: readonly ManifestChange[];
}

/** The spec with these manifests applied, one after the other, as kubectl applies a file's objects. */
export function planApply(document: SpecDocument, manifests: readonly unknown[]): Plan {
  const workloads = workloadManifests(document);
  const changes = manifests.map((manifest): ManifestChange => {
    const key = keyOf(manifest);
    const at = workloads.findIndex((existing) => sameKey(keyOf(existing), key));
    if (at < 0) {
      workloads.push(manifest);
      return { key, outcome: 'created' };
    }
    if (isDeepStrictEqual(workloads[at], manifest)) return { key, outcome: 'unchanged' };
    workloads[at] = manifest;
    return { key, outcome: 'configured' };
  });
  const changed = changes.some((change) => change.outcome !== 'unchanged');
  return { text: changed ? withWorkloads(document.text, workloads) : undefined, changes };
}

/** The spec without the objects these manifests name. */
export function planDelete(document: SpecDocument, manifests: readonly unknown[]): Plan {
  let workloads = workloadManifests(document);
  const changes = manifests.map((manifest): ManifestChange => {
    const key = keyOf(manifest);
    const remaining = workloads.filter((existing) => !sameKey(keyOf(existing), key));
    const outcome = remaining.length < workloads.length ? 'deleted' : 'not found';
    workloads = remaining;
    return { key, outcome };
  });
  const changed = changes.some((change) => change.outcome === 'deleted');
  return { text: changed ? withWorkloads(document.text, workloads) : undefined, changes };
}

/** The spec with one Deployment's `spec.replicas` set, as `kubectl scale` patches its scale subresource. */
export function planScale(document: SpecDocument, key: ObjectKey, replicas: number): Plan {
  const workloads = workloadManifests(document);
  const at = workloads.findIndex((existing) => sameKey(keyOf(existing), key));
  if (at < 0) return { text: undefined, changes: [{ key, outcome: 'not found' }] };
  const manifest = workloads[at] as { spec?: Record<string, unknown> };
  if (manifest.spec?.replicas === replicas) return { text: undefined, changes: [{ key, outcome: 'scaled' }] };
  workloads[at] = { ...manifest, spec: { ...manifest.spec, replicas } };
  return { text: withWorkloads(document.text, workloads), changes: [{ key, outcome: 'scaled' }] };
}

/** kubectl's line for one object; `not found` is the server's error, as kubectl prints it. */
function describeChange({ key, outcome }: ManifestChange, file: string): string {
  if (outcome === 'not found') {
    return `Error from server (NotFound): error when deleting "${file}": deployments.apps "${key.name}" not found`;
  }
  return outcome === 'deleted' ? `deployment.apps "${key.name}" deleted` : `deployment.apps/${key.name} ${outcome}`;
}

/** Checks the new spec builds a cluster before anything is written, so a refused change leaves the lab as it was. */
function checkedCluster(document: SpecDocument, text: string): ClusterState {
  return buildCluster(parseSpecDocument({ ...document, text }));
}

/** Replaces the file in one step: an agent or CLI reading it meanwhile sees the old spec or the new, never half. */
function writeAtomically(file: string, text: string): void {
  const staging = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(staging, text);
    renameSync(staging, file);
  } catch (error) {
    rmSync(staging, { force: true });
    throw new UsageError(`cannot write the lab's spec ${file}: ${(error as Error).message}`);
  }
}

/**
 * Asks every node agent to re-read the spec. An agent that cannot be reached reads it when it starts again (compose
 * restarts it); one that reloaded another file means the nodes do not share the spec, and the lab is inconsistent.
 */
async function reloadAgents(io: Io, cluster: ClusterState, expected: string): Promise<boolean> {
  const results = await Promise.allSettled(
    cluster.nodes.map((node) => agentFor(cluster, node, 'apply -f FILE', RELOAD_TIMEOUT_MS).request('POST /v1/reload')),
  );
  let consistent = true;
  results.forEach((result, i) => {
    const node = cluster.nodes[i].name;
    if (result.status === 'rejected') {
      const error = result.reason as Error;
      if (error instanceof AgentError) {
        consistent = false;
        io.err(`error: ${error.message}\n`);
      } else {
        io.err(`Warning: ${node} was not reloaded (${error.message}); its agent reads the new spec when it starts\n`);
      }
    } else if (result.value.specDigest !== expected) {
      consistent = false;
      io.err(
        `error: ${node} reloaded a different spec file than this one: the node containers must share the lab's spec ` +
          '(docker-compose.yml mounts one volume at /etc/ipip-lab in every node)\n',
      );
    }
  });
  return consistent;
}

export interface ManifestCommandOptions {
  /** The spec to edit; default as every view finds it (the lab's, inside a node container). */
  readonly spec?: string;
}

/**
 * `apply -f` or `delete -f` with one or more files: prints kubectl's line per object, rewrites the spec when
 * something changed, and, inside a node container, has every agent reload it. Exits 1 as kubectl does when an object
 * was not found or the lab could not take the change.
 */
export async function runManifestCommand(
  verb: 'apply' | 'delete',
  files: readonly string[],
  io: Io,
  options: ManifestCommandOptions = {},
): Promise<void> {
  if (files.length === 0) throw new UsageError(`${verb} needs -f FILE (e.g. ${verb} -f deployment.yml)`);
  const specPath = resolveSpecPath(options.spec);
  let failed = false;
  for (const file of files) {
    if (URL_PATTERN.test(file)) {
      io.out(`${remoteManifest(file, verb)}\n`);
      continue;
    }
    const manifests = readManifests(file, verb);
    const document = readSpecFile(specPath);
    const plan = verb === 'apply' ? planApply(document, manifests) : planDelete(document, manifests);
    const committed = await commitPlan(io, specPath, document, plan, options, {
      refused: `the lab cannot run ${file}`,
      describe: (change) => describeChange(change, file),
    });
    failed ||= !committed;
  }
  if (failed) throw new ExitStatus(1);
}

/**
 * Writes a plan's spec (checked first, so a refused change leaves the lab as it was), prints kubectl's line per object
 * and, inside a node container, has every agent reload. False when an object was not found or the lab is inconsistent.
 */
async function commitPlan(
  io: Io,
  specPath: string,
  document: SpecDocument,
  plan: Plan,
  options: ManifestCommandOptions,
  words: { refused: string; describe: (change: ManifestChange) => string },
): Promise<boolean> {
  let cluster: ClusterState | undefined;
  if (plan.text !== undefined) {
    try {
      cluster = checkedCluster(document, plan.text);
    } catch (error) {
      throw new UsageError(`${words.refused}, nothing changed: ${(error as Error).message}`);
    }
    writeAtomically(specPath, plan.text);
  }
  let ok = true;
  for (const change of plan.changes) {
    if (change.outcome === 'not found') {
      ok = false;
      io.err(`${words.describe(change)}\n`);
    } else {
      io.out(`${words.describe(change)}\n`);
    }
  }
  // Live only where the views are live: inside a node container, with no --spec pointing elsewhere.
  if (cluster && options.spec === undefined && existsSync(agentSocketPath())) {
    ok = (await reloadAgents(io, cluster, specDigest(readSpecFile(specPath)))) && ok;
  }
  return ok;
}

/**
 * `kubectl scale deployment NAME --replicas=N`: the Deployment's replicas in the spec, then every agent reloads, so
 * the pods beyond N go (the newest first, as a ReplicaSet picks them) or new ones come.
 */
export async function runScaleCommand(
  key: ObjectKey,
  replicas: number,
  io: Io,
  options: ManifestCommandOptions = {},
): Promise<void> {
  const specPath = resolveSpecPath(options.spec);
  const document = readSpecFile(specPath);
  const committed = await commitPlan(io, specPath, document, planScale(document, key, replicas), options, {
    refused: `the lab cannot run deployment ${key.name} with ${replicas} replicas`,
    describe: ({ outcome }) =>
      outcome === 'not found'
        ? `Error from server (NotFound): deployments.apps "${key.name}" not found`
        : `deployment.apps/${key.name} scaled`,
  });
  if (!committed) throw new ExitStatus(1);
}
