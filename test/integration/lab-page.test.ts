/**
 * The lab page of the first seed's compose lab, driven in real headless Chromium (Debian's chromium, through
 * playwright-core): the topology following `kubectl apply` and `delete`, each node's tables, and traces of real
 * packets hop by hop, with the screenshots the README shows. And the page's reach: published on the host's
 * 127.0.0.1 only, its container no router, the lab network still internal.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../support/cli.js';
import { startComposeLab, type ComposeLab } from '../support/compose.js';
import { captureRows } from '../support/lab-packets.js';

const run = promisify(execFile);
const PROJECT = 'ipip-lab-test-page';
const CHROMIUM = process.env.IPIP_LAB_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = path.join(REPO_ROOT, 'docs', 'screenshots');
/** The flags a headless Chromium needs on a machine with no network beyond its own. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let lab: ComposeLab;
let browser: Browser;
let page: Page;
let pageUrl: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `the lab page's browser test needs Chromium at ${CHROMIUM}: apt-get install chromium, or set IPIP_LAB_CHROMIUM`,
    );
  }
  lab = await startComposeLab('docker-compose.yml', PROJECT);
  pageUrl = `http://${await lab.publishedAt('page', 8480)}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(pageUrl);
  await page.waitForSelector('body[data-ready="true"]');
});

afterAll(async () => {
  await browser?.close();
  await lab?.down();
});

const field = (hop: Locator, key: string) => hop.locator(`[data-testid="field"][data-key="${key}"]`).first();
const valueOf = async (hop: Locator, key: string) =>
  (await field(hop, key).locator('[data-testid="field-value"]').textContent())?.trim();

describe('reach', () => {
  test('published on the host’s 127.0.0.1 only', async () => {
    const published = await lab.publishedAt('page', 8480);
    expect(published).toMatch(/^127\.0\.0\.1:\d+$/);
    const port = Number(published.split(':')[1]);
    // Every other address of this machine refuses the port.
    const others = Object.values(os.networkInterfaces())
      .flatMap((infos) => infos ?? [])
      .filter((info) => info.family === 'IPv4' && !info.internal)
      .map((info) => info.address);
    expect(others.length).toBeGreaterThan(0);
    for (const address of others) {
      const refused = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: address, port, timeout: 2000 });
        socket.on('connect', () => (socket.destroy(), resolve(false)));
        socket.on('error', () => resolve(true));
        socket.on('timeout', () => (socket.destroy(), resolve(true)));
      });
      expect(refused, `${address}:${port}`).toBe(true);
    }
  });

  test('the lab network stays internal, and the page’s container forwards nothing', async () => {
    const { stdout } = await run('docker', ['network', 'inspect', `${PROJECT}_lab`, '--format', '{{.Internal}}']);
    expect(stdout.trim()).toBe('true');
    expect((await lab.ok('page', 'cat', '/proc/sys/net/ipv4/ip_forward')).trim()).toBe('0');
  });

  test('a request addressed to another host name is refused (no DNS rebinding)', async () => {
    const { stdout } = await run('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      'Host: evil.example',
      `${pageUrl}api/lab`,
    ]);
    expect(stdout).toBe('421');
  });
});

describe('the topology', () => {
  test('three nodes, with their addresses and blocks, and no pods before kubectl apply', async () => {
    const nodes = page.locator('[data-testid="node"]');
    await expect.poll(() => nodes.count()).toBe(3);
    expect(await nodes.evaluateAll((groups) => groups.map((g) => g.getAttribute('data-node')).sort())).toEqual([
      'master-node',
      'worker-node01',
      'worker-node02',
    ]);
    const worker = page.locator('[data-testid="node"][data-node="worker-node01"]');
    expect(await worker.textContent()).toContain('10.0.0.11');
    expect(await page.locator('[data-testid="pod"]').count()).toBe(0);
    expect(await page.locator('[data-testid="tunnel"]').count()).toBeGreaterThan(0);
  });

  test('kubectl apply: the pods appear, on the nodes they run on, without a reload', async () => {
    await lab.ok('master-node', 'kubectl', 'apply', '-f', 'deployment.yml');
    const pods = page.locator('[data-testid="pod"]');
    await expect.poll(() => pods.count(), { timeout: 10_000 }).toBe(3);
    const placed = await pods.evaluateAll((groups) => groups.map((g) => g.getAttribute('data-node')));
    expect(placed.every((node) => node === 'worker-node01' || node === 'worker-node02')).toBe(true);
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'lab-page.png'), fullPage: true });
  });

  test("each node's tables in the real tools' formats", async () => {
    await page.locator('[data-testid="table-node"]').selectOption('worker-node01');
    const ipRoute = await page.locator('[data-testid="table-ip-route"]').textContent();
    expect(ipRoute).toMatch(/via 10\.0\.0\.12 dev tunl0 proto bird onlink/);
    expect(ipRoute).toMatch(/blackhole 192\.168\.\d+\.\d+\/26 proto bird/);
    expect(await page.locator('[data-testid="table-route"]').textContent()).toContain('Kernel IP routing table');
    expect(await page.locator('[data-testid="table-ip-addr"]').textContent()).toMatch(
      /tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480/,
    );
  });

  test("the tables are the agents' own: worker-node02 stopped (a Cease), its block leaves worker-node01's; started, back", async () => {
    await page.locator('[data-testid="table-node"]').selectOption('worker-node01');
    const ipRoute = page.locator('[data-testid="table-ip-route"]');
    const viaWorker02 = /192\.168\.158\.0\/26 via 10\.0\.0\.12 dev tunl0 proto bird onlink/;
    expect(await ipRoute.textContent()).toMatch(viaWorker02);
    const container = `${PROJECT}-worker-node02-1`;
    await run('docker', ['stop', container]);
    try {
      await expect
        .poll(async () => viaWorker02.test((await ipRoute.textContent()) ?? ''), { timeout: 15_000 })
        .toBe(false);
    } finally {
      await run('docker', ['start', container]);
    }
    await expect
      .poll(async () => viaWorker02.test((await ipRoute.textContent()) ?? ''), { timeout: 30_000 })
      .toBe(true);
  });
});

/** Runs a ready-made example and waits for its result. */
async function runExample(id: string): Promise<Locator> {
  await page.locator(`[data-testid="example"][data-example="${id}"]`).click();
  await page.waitForSelector('body:not([data-tracing="true"]) [data-testid="trace-result"]', { timeout: 20_000 });
  return page.locator('[data-testid="trace-result"]');
}

describe('the packet tracer', () => {
  test("the seed's path, pod → pod across nodes: TTL 64 → 63 at encapsulation, outer 10.0.0.11 → 10.0.0.12 proto 4, TTL 62 at the pod", async () => {
    const result = await runExample('pod-to-pod');
    expect(await result.getAttribute('data-outcome')).toBe('answered');
    const forward = (selector: string) => result.locator(`[data-testid="hop"][data-path="forward"]${selector}`).first();

    const leavingPod = forward('[data-kind="capture"][data-node="worker-node01"][data-direction="rx"]');
    expect(await valueOf(leavingPod, 'ip.ttl')).toBe('64');
    const intoTunnel = forward(
      '[data-kind="capture"][data-node="worker-node01"][data-interface="tunl0"][data-direction="tx"]',
    );
    expect(await valueOf(intoTunnel, 'ip.ttl')).toBe('63');
    expect(await field(intoTunnel, 'ip.ttl').getAttribute('data-changed')).toBe('true');

    const onWire = forward(
      '[data-kind="capture"][data-node="worker-node01"][data-interface="eth0"][data-direction="tx"]',
    );
    expect(await valueOf(onWire, 'outer.src')).toBe('10.0.0.11');
    expect(await valueOf(onWire, 'outer.dst')).toBe('10.0.0.12');
    expect(await valueOf(onWire, 'outer.protocol')).toContain('(4)');
    expect(await valueOf(onWire, 'outer.ttl')).toBe('63');

    const intoPod = forward('[data-kind="capture"][data-node="worker-node02"][data-direction="tx"]');
    expect(await valueOf(intoPod, 'ip.ttl')).toBe('62');
    expect(
      await forward('[data-kind="route"][data-node="worker-node01"]')
        .locator('[data-testid="route-matched"]')
        .textContent(),
    ).toMatch(/via 10\.0\.0\.12 dev tunl0 proto bird onlink/);
    expect(await result.locator('[data-testid="hop"][data-path="reply"]').count()).toBeGreaterThan(0);
    // The README shows the form, the outcome and the first hops: the whole trace is a few screens long.
    const tracer = (await page.locator('#tracer-section').boundingBox())!;
    await page.screenshot({
      path: path.join(SCREENSHOTS, 'trace.png'),
      fullPage: true,
      clip: {
        x: 0,
        y: tracer.y + (await page.evaluate(() => window.scrollY)),
        width: 1400,
        height: Math.min(tracer.height, 1600),
      },
    });

    // The trace's pcapng holds the probe at every tap, as tshark reads it.
    const href = await result.locator('[data-testid="trace-pcapng"]').getAttribute('href');
    const download = await fetch(new URL(href!, pageUrl));
    const rows = await captureRows(Buffer.from(await download.arrayBuffer()), ['ip.src', 'ip.proto']);
    expect(rows.length).toBeGreaterThanOrEqual(10);
    expect(rows).toContainEqual([expect.stringMatching(/^10\.0\.0\.11;192\.168\./), '4;1']);
    expect(rows).toContainEqual([expect.stringMatching(/^192\.168\./), '1']);
  });

  test("MTU 1480 with DF: the pod's own eth0 refuses 1488 bytes, as a Calico pod's kernel does, and nothing reaches the wire", async () => {
    const result = await runExample('mtu-df');
    expect(await result.getAttribute('data-outcome')).toBe('refused by the sender');
    expect(await result.locator('[data-testid="trace-summary"]').textContent()).toContain('message too long, mtu=1480');
    expect(await result.locator('[data-testid="trace-tool-output"]').textContent()).toContain(
      'local error: message too long, mtu=1480',
    );
    expect(await result.locator('[data-testid="hop"][data-kind="capture"]').count()).toBe(0);
  });

  test('a ping to a blackholed address ends at the blackhole route, with no ICMP back', async () => {
    const result = await runExample('blackhole');
    expect(await result.getAttribute('data-outcome')).toBe('dropped');
    const drop = result.locator('[data-testid="hop"][data-kind="drop"]');
    expect(await drop.textContent()).toMatch(/blackhole 192\.168\.\d+\.\d+\/26 proto bird/);
    expect(await result.locator('[data-testid="hop"][data-path="reply"]').count()).toBe(0);
  });

  test('a bad destination is a clear error on the page, and the lab is untouched', async () => {
    await page.locator('[data-testid="trace-to-address"]').fill('not-an-address');
    await page.locator('[data-testid="trace-run"]').click();
    await expect.poll(() => page.locator('body').textContent()).toContain('neither a pod, a node, nor an IPv4 address');
    await page.locator('[data-testid="trace-to-address"]').fill('');
  });

  test('kubectl delete: the pods leave the drawing', async () => {
    await lab.ok('master-node', 'kubectl', 'delete', '-f', 'deployment.yml');
    await expect.poll(() => page.locator('[data-testid="pod"]').count(), { timeout: 10_000 }).toBe(0);
  });
});
