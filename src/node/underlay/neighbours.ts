/**
 * The node's ARP entries for its peers, kept out of the host's neighbour limit.
 *
 * Every container on a machine shares the kernel's one neighbour table, and its limit (gc_thresh3, 1024 by default)
 * counts every network namespace's entries together. Real nodes each have a kernel of their own; fifty node containers
 * that all talk to each other need 2,450 entries, and past 1024 the kernel drops packets ("neighbor table overflow!").
 *
 * Since Linux 4.20 the limit counts only entries the kernel may garbage-collect: a permanent entry, or one flagged as
 * externally learned, is exempt (net/core/neighbour.c, neigh_alloc's exempt_from_gc). A permanent entry needs its MAC
 * up front and would never follow a peer whose container came back with another one. An entry that is `managed` as
 * well (Linux 5.16) is resolved by the kernel itself, as soon as it exists, and kept fresh by its own probes. So each
 * peer gets `ip neigh replace PEER dev eth0 managed extern_learn`: exempt from the limit, never collected, and still
 * updated by ARP when a peer's MAC changes. Nothing here learns or writes a MAC.
 *
 * This needs NET_ADMIN in the node's container. Without it the node works as before and says once that a large lab
 * may overflow the host's table.
 */
import type { Ipv4Address } from '../../routing/index.js';
import { runIpBatch, type IpBatchRunner } from '../iproute2.js';

export type { IpBatchRunner } from '../iproute2.js';

/** Why pinning failed, in the words a user can act on, and whether trying again could ever help. */
function explain(error: unknown): { reason: string; final: boolean } {
  const message = error instanceof Error ? error.message : String(error);
  if (/Operation not permitted/i.test(message))
    return { reason: `${message}: the container lacks NET_ADMIN`, final: true };
  if (/ENOENT/.test(message)) return { reason: `${message}: iproute2's ip is not installed`, final: true };
  return { reason: message, final: false };
}

export class NeighbourPins {
  /** The peers this node pinned, by address: the only entries it removes again. */
  private readonly pinned = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(
    private readonly device: string,
    private readonly log: (line: string) => void,
    private readonly run: IpBatchRunner = runIpBatch,
  ) {}

  /**
   * Makes the pinned set exactly these peers: pins the new ones, unpins those that left. Runs in the background,
   * one change after the other; the returned promise is for tests and never rejects.
   */
  pin(peers: readonly Ipv4Address[]): Promise<void> {
    this.queue = this.queue.then(() => this.apply(new Set(peers.map(String))));
    return this.queue;
  }

  private async apply(wanted: ReadonlySet<string>): Promise<void> {
    const added = [...wanted].filter((peer) => !this.pinned.has(peer));
    const removed = [...this.pinned].filter((peer) => !wanted.has(peer));
    if (this.failed || (added.length === 0 && removed.length === 0)) return;
    const lines = [
      ...added.map((peer) => `neigh replace ${peer} dev ${this.device} managed extern_learn`),
      ...removed.map((peer) => `neigh del ${peer} dev ${this.device}`),
    ];
    try {
      await this.run(lines);
    } catch (error) {
      const { reason, final } = explain(error);
      // A node without the capability will not gain it: say so once, not at every reload.
      this.failed = final;
      this.log(
        `cannot pin the peers' neighbour entries on ${this.device} (${reason}); they count against the host's ` +
          'shared limit (net.ipv4.neigh.default.gc_thresh3), which a large lab may overflow',
      );
      return;
    }
    for (const peer of added) this.pinned.add(peer);
    for (const peer of removed) this.pinned.delete(peer);
    this.log(
      `neighbour entries of ${this.pinned.size} peer${this.pinned.size === 1 ? '' : 's'} on ${this.device}: ` +
        "managed by the kernel, outside the host's shared limit",
    );
  }
}
