/**
 * The names a real cluster shows for workloads: Calico's host-side veth names and Kubernetes' ReplicaSet/pod names.
 */
import { createHash } from 'node:crypto';
import { fnv1a_32, GoRand } from './gorand.js';

/**
 * The pieces as one flat string. V8 keeps `a + b` and template literals as trees of string nodes, several times the
 * text's size (and keeps the tree beside a flat copy once something needs it flat); the names made here live as
 * long as the cluster state, one set per pod.
 */
function flatConcat(...pieces: string[]): string {
  return pieces.join('');
}

/**
 * Calico's `VethNameForWorkload` (libcalico-go/lib/names, earlier the cni-plugin): "cali" (Felix's default
 * FELIX_INTERFACEPREFIX) + the first 11 hex digits of sha1("<namespace>.<pod>"), 15 characters, the most a Linux
 * interface name may have.
 */
export function vethNameForWorkload(namespace: string, podName: string): string {
  const digest = createHash('sha1').update(`${namespace}.${podName}`, 'utf8').digest('hex');
  return flatConcat('cali', digest.slice(0, 11));
}

/** k8s.io/apimachinery/pkg/util/rand `alphanums`: no vowels, so generated names don't spell words. */
export const K8S_ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';

/**
 * apimachinery's `rand.SafeEncodeString`: each character c becomes alphanums[c % 27]. Go walks runes but writes by
 * rune index into a buffer of len(s) bytes, leaving NUL bytes at the end for multi-byte input; we stop at the runes,
 * which is identical for the ASCII (decimal) strings Kubernetes feeds it.
 */
export function safeEncodeString(s: string): string {
  let encoded = '';
  for (const char of s) encoded += K8S_ALPHANUMS[(char.codePointAt(0) as number) % K8S_ALPHANUMS.length];
  return encoded;
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** JSON with every object's keys sorted, so equal templates hash equally whatever order their keys were written in. */
function canonicalJson(value: unknown): string {
  const json = JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => compareCodeUnits(a, b)))
      : item,
  );
  if (json === undefined) throw new TypeError('pod template must be JSON-serialisable');
  return json;
}

/**
 * The `pod-template-hash` label and ReplicaSet suffix, shaped as Kubernetes' `controller.ComputeHash`:
 * SafeEncodeString of the decimal FNV-1a-32. Kubernetes hashes a go-spew dump of the Go PodTemplateSpec struct
 * (`DeepHashObject`), which depends on Go type names and field layout we do not have, so we hash canonical JSON
 * instead: same alphabet and length (one character per decimal digit, 1 to 10), not the same value.
 */
export function podTemplateHash(templateJson: unknown): string {
  return safeEncodeString(String(fnv1a_32(canonicalJson(templateJson))));
}

const SUFFIX_LENGTH = 5;
const INDEX_BITS = 5;
const INDEX_MASK = (1n << BigInt(INDEX_BITS)) - 1n;
const INDICES_PER_INT63 = Math.floor(63 / INDEX_BITS);

/** apimachinery's `rand.String(n)`: 5-bit slices of Int63s, skipping slices past the end of the alphabet. */
function k8sRandomString(rand: GoRand, length: number): string {
  let out = '';
  let bits = rand.int63();
  let remaining = INDICES_PER_INT63;
  while (out.length < length) {
    if (remaining === 0) {
      bits = rand.int63();
      remaining = INDICES_PER_INT63;
    }
    const index = Number(bits & INDEX_MASK);
    if (index < K8S_ALPHANUMS.length) out += K8S_ALPHANUMS[index];
    bits >>= BigInt(INDEX_BITS);
    remaining--;
  }
  return out;
}

/**
 * `count` distinct pod-name suffixes as the apiserver's name generator makes them (`rand.String(5)`), but from Go's
 * math/rand seeded with FNV-1a-32 of `seed` rather than the clock, so a lab gets the same pod names on every run.
 */
export function podNameSuffix(seed: string, count: number): string[] {
  const possible = K8S_ALPHANUMS.length ** SUFFIX_LENGTH;
  if (!Number.isInteger(count) || count < 0 || count > possible) {
    throw new RangeError(`count must be an integer 0..${possible}, got ${count}`);
  }
  const rand = new GoRand(BigInt(fnv1a_32(seed)));
  const suffixes = new Set<string>();
  while (suffixes.size < count) suffixes.add(k8sRandomString(rand, SUFFIX_LENGTH));
  return [...suffixes];
}

/** Kubernetes' SimpleNameGenerator keeps a generateName base to 63 - 5 characters so the name stays a DNS label. */
const MAX_GENERATE_NAME_BASE = 63 - SUFFIX_LENGTH;

/**
 * A Deployment's pod name: ReplicaSet `<deployment>-<hash>`, pods `generateName: <replicaset>-` plus the suffix,
 * e.g. hello-world-54575d5b77-db9tv.
 */
export function podName(deployment: string, hash: string, suffix: string): string {
  return flatConcat(`${deployment}-${hash}-`.slice(0, MAX_GENERATE_NAME_BASE), suffix);
}

/**
 * The pod's sandbox container ID, which the CNI plugin's IPAM handle (`k8s-pod-network.<id>`) and the
 * WorkloadEndpoint name: 64 hex digits as containerd makes them, from the pod's identity where those are random.
 */
export function podContainerId(namespace: string, podName: string): string {
  return createHash('sha256').update(`sandbox/${namespace}/${podName}`).digest('hex');
}

/** libcalico-go's names.go: a `-` inside a name part is doubled, so that the parts' `-` separators stay unambiguous. */
function escapeDashes(part: string): string {
  return part.replace(/-/g, '--');
}

/** CalculateWorkloadEndpointName for Kubernetes: `NODE-k8s-POD-ENDPOINT`, each part's dashes doubled. */
export function workloadEndpointName(node: string, podName: string, endpoint = 'eth0'): string {
  return [node, 'k8s', podName, endpoint].map(escapeDashes).join('-');
}
