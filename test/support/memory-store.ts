/**
 * An in-memory compare-and-swap store with etcd's semantics (a global revision, each key's ModRevision), for the IPAM
 * tests. Every operation yields to the event loop first, so concurrent claims really interleave between their steps.
 */
import type { CasStore, Stored } from '../../src/calico/index.js';

export class MemoryCasStore implements CasStore {
  readonly entries = new Map<string, Stored>();
  private revision = 0;
  conflicts = 0;

  private async turn(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
  }

  private write(key: string, value: string): void {
    this.entries.set(key, { value, revision: String(++this.revision) });
  }

  async get(key: string): Promise<Stored | undefined> {
    await this.turn();
    return this.entries.get(key);
  }

  async list(prefix: string): Promise<Map<string, Stored>> {
    await this.turn();
    return new Map([...this.entries].filter(([key]) => key.startsWith(prefix)));
  }

  async create(key: string, value: string): Promise<boolean> {
    await this.turn();
    if (this.entries.has(key)) return this.refuse();
    this.write(key, value);
    return true;
  }

  async update(key: string, value: string, revision: string): Promise<boolean> {
    await this.turn();
    if (this.entries.get(key)?.revision !== revision) return this.refuse();
    this.write(key, value);
    return true;
  }

  async delete(key: string, revision?: string): Promise<boolean> {
    await this.turn();
    const stored = this.entries.get(key);
    if (!stored || (revision !== undefined && stored.revision !== revision)) return this.refuse();
    this.entries.delete(key);
    return true;
  }

  async put(key: string, value: string): Promise<void> {
    await this.turn();
    this.write(key, value);
  }

  private refuse(): false {
    this.conflicts++;
    return false;
  }
}
