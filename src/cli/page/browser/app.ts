/**
 * The lab page in the browser: it polls the lab's snapshot once a second and draws the topology and a node's tables,
 * and it runs traces and shows them hop by hop, each hop's packet as Wireshark's packet pane does (fields over
 * bytes, hovering a field lights its bytes). Plain DOM and SVG: nothing to fetch from the internet, nothing to build
 * but this file.
 */
import type {
  Hop,
  HopPacket,
  LabSnapshot,
  PageNode,
  PageTunnel,
  TraceExample,
  TraceProtocol,
  TraceRequest,
  TraceResult,
} from '../page-protocol.js';

const POLL_MS = 1000;
const SVG_NS = 'http://www.w3.org/2000/svg';
/** Packets up to this length show their bytes at once; longer ones on demand (a hex dump is a span per byte). */
const BYTES_SHOWN_AT_ONCE = 128;

type Children = (Node | string | null | undefined | false)[];

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: Children
): HTMLElementTagNameMap[K] {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined && child !== false) made.append(child);
  return made;
}

function svg(tag: string, attributes: Record<string, string | number> = {}, ...children: Children): SVGElement {
  const made = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
  for (const child of children) if (child !== null && child !== undefined && child !== false) made.append(child);
  return made;
}

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

async function api<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  const body = (await response.json()) as T | { error: string };
  if (!response.ok) {
    const message = typeof body === 'object' && body !== null && 'error' in body ? body.error : response.statusText;
    throw new Error(message);
  }
  return body as T;
}

function rate(value: number, unit: string): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)} M${unit}`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k${unit}`;
  return `${Math.round(value)} ${unit}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Topology

const NODE_WIDTH = 300;
const NODE_HEADER = 92;
const POD_HEIGHT = 36;

/** What the last trace crossed, lit in the drawing. */
interface Traced {
  nodes: Set<string>;
  pods: Set<string>;
  /** `from to` node pairs. */
  tunnels: Set<string>;
}

interface Placed {
  node: PageNode;
  x: number;
  y: number;
  height: number;
}

function nodeHeight(node: PageNode): number {
  return NODE_HEADER + Math.max(1, node.pods.length) * POD_HEIGHT + 8;
}

/** The nodes around a circle, so that every tunnel is a chord between two boxes and none crosses a box's middle. */
function place(nodes: PageNode[]): { placed: Placed[]; width: number; height: number } {
  const tallest = Math.max(...nodes.map(nodeHeight), NODE_HEADER);
  const radius = nodes.length <= 1 ? 0 : Math.max(230, (nodes.length * (NODE_WIDTH + 30)) / (2 * Math.PI));
  const placed = nodes.map((node, index) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * index) / nodes.length;
    return {
      node,
      x: radius * Math.cos(angle) * 1.25,
      y: radius * Math.sin(angle) * 0.8,
      height: nodeHeight(node),
    };
  });
  const margin = 20;
  const minX = Math.min(...placed.map((p) => p.x)) - NODE_WIDTH / 2 - margin;
  const minY = Math.min(...placed.map((p) => p.y)) - tallest / 2 - margin;
  for (const p of placed) {
    p.x -= minX;
    p.y -= minY;
  }
  const width = Math.max(...placed.map((p) => p.x)) + NODE_WIDTH / 2 + margin;
  const height = Math.max(...placed.map((p) => p.y)) + tallest / 2 + margin;
  return { placed, width, height };
}

/** Where the line from a box's centre towards (dx, dy) leaves the box, as a fraction of (dx, dy). */
function exitFraction(placed: Placed, dx: number, dy: number): number {
  const alongX = dx === 0 ? Infinity : NODE_WIDTH / 2 / Math.abs(dx);
  const alongY = dy === 0 ? Infinity : placed.height / 2 / Math.abs(dy);
  return Math.min(alongX, alongY);
}

function tunnelElement(tunnel: PageTunnel, from: Placed, to: Placed, labelled: boolean, traced: boolean): SVGElement {
  // Each direction is its own line, a little to its right, so that the two rates read apart; it runs from box edge to
  // box edge, so that its arrow shows.
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const length = Math.hypot(dx, dy) || 1;
  const sideX = -dy / length;
  const sideY = dx / length;
  const start = exitFraction(from, dx, dy);
  const end = 1 - exitFraction(to, -dx, -dy);
  const x1 = from.x + dx * start + sideX * 6;
  const y1 = from.y + dy * start + sideY * 6;
  const x2 = from.x + dx * end + sideX * 6;
  const y2 = from.y + dy * end + sideY * 6;
  const active = (tunnel.packetsPerSecond ?? 0) > 0;
  const text =
    tunnel.packetsPerSecond === null || tunnel.bytesPerSecond === null
      ? '…'
      : `${rate(tunnel.packetsPerSecond, 'pkt/s')} · ${rate(tunnel.bytesPerSecond, 'B/s')}`;
  // The label sits beside the middle of its own line, on its own side, further off a steep line (text is wide).
  const away = 14 + Math.abs(sideX) * 46;
  const labelX = (x1 + x2) / 2 + sideX * away;
  const labelY = (y1 + y2) / 2 + sideY * away + 4;
  return svg(
    'g',
    {
      'data-testid': 'tunnel',
      'data-from': tunnel.from,
      'data-to': tunnel.to,
      class: ['tunnel', active ? 'active' : '', traced ? 'traced' : ''].join(' ').trim(),
    },
    svg('title', {}, `tunl0 ${tunnel.from} → ${tunnel.to}: ${text}`),
    svg('line', { x1, y1, x2, y2, 'marker-end': 'url(#arrow)' }),
    labelled && svg('text', { x: labelX, y: labelY, 'text-anchor': 'middle', class: 'rate' }, text),
  );
}

function nodeElement(placed: Placed, tracedNodes: ReadonlySet<string>, tracedPods: ReadonlySet<string>): SVGElement {
  const { node } = placed;
  const left = placed.x - NODE_WIDTH / 2;
  const top = placed.y - placed.height / 2;
  const lines = [
    `${node.ip}${node.dataplane === null ? '' : ` · ${node.dataplane} dataplane`}`,
    `tunl0 ${node.tunnelAddress ?? '(none)'}`,
    `block ${node.blocks.join(', ') || '(none)'}`,
  ];
  const group = svg(
    'g',
    {
      'data-testid': 'node',
      'data-node': node.name,
      class: ['node', node.error === undefined ? '' : 'down', tracedNodes.has(node.name) ? 'traced' : '']
        .join(' ')
        .trim(),
    },
    svg('rect', { x: left, y: top, width: NODE_WIDTH, height: placed.height, rx: 10 }),
    svg('text', { x: left + 12, y: top + 22, class: 'node-name' }, node.name),
    ...lines.map((line, index) => svg('text', { x: left + 12, y: top + 42 + index * 15, class: 'node-detail' }, line)),
  );
  if (node.error !== undefined) {
    group.append(svg('text', { x: left + 12, y: top + NODE_HEADER + 18, class: 'node-error' }, node.error));
  } else if (node.pods.length === 0) {
    group.append(svg('text', { x: left + 12, y: top + NODE_HEADER + 18, class: 'node-detail' }, 'no pods'));
  }
  node.pods.forEach((pod, index) => {
    const podTop = top + NODE_HEADER + index * POD_HEIGHT;
    group.append(
      svg(
        'g',
        {
          'data-testid': 'pod',
          'data-pod': pod.name,
          'data-node': node.name,
          class: tracedPods.has(pod.name) ? 'pod traced' : 'pod',
        },
        svg('title', {}, `${pod.namespace}/${pod.name}`),
        svg('rect', { x: left + 8, y: podTop, width: NODE_WIDTH - 16, height: POD_HEIGHT - 4, rx: 5 }),
        svg('text', { x: left + 16, y: podTop + 14, class: 'pod-name' }, pod.name),
        svg('text', { x: left + 16, y: podTop + 27, class: 'pod-detail' }, `${pod.ip} · ${pod.hostInterface}`),
      ),
    );
  });
  return group;
}

function drawTopology(snapshot: LabSnapshot, traced: Traced): void {
  const canvas = byId('topology') as unknown as SVGSVGElement;
  const { placed, width, height } = place(snapshot.nodes);
  const byName = new Map(placed.map((p) => [p.node.name, p]));
  // Rates on every line only while they can be read; a big lab shows them on hover.
  const labelled = snapshot.nodes.length <= 6;
  const tunnels = snapshot.tunnels.flatMap((tunnel) => {
    const from = byName.get(tunnel.from);
    const to = byName.get(tunnel.to);
    return from === undefined || to === undefined
      ? []
      : [tunnelElement(tunnel, from, to, labelled, traced.tunnels.has(`${tunnel.from} ${tunnel.to}`))];
  });
  canvas.setAttribute('viewBox', `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`);
  canvas.setAttribute('width', String(Math.ceil(width)));
  canvas.setAttribute('height', String(Math.ceil(height)));
  canvas.replaceChildren(
    svg(
      'defs',
      {},
      svg(
        'marker',
        { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }),
      ),
    ),
    ...tunnels,
    ...placed.map((p) => nodeElement(p, traced.nodes, traced.pods)),
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// Tables and the tracer's choices

function setOptions(select: HTMLSelectElement, options: { value: string; label: string; group?: string }[]): void {
  const wanted = JSON.stringify(options);
  if (select.dataset.options === wanted) return;
  const kept = select.value;
  const groups = new Map<string, HTMLOptGroupElement>();
  select.replaceChildren();
  for (const option of options) {
    const made = element('option', { value: option.value }, option.label);
    if (option.group === undefined) {
      select.append(made);
      continue;
    }
    let group = groups.get(option.group);
    if (group === undefined) {
      group = element('optgroup', { label: option.group });
      groups.set(option.group, group);
      select.append(group);
    }
    group.append(made);
  }
  select.dataset.options = wanted;
  if (options.some((option) => option.value === kept)) select.value = kept;
}

function setText(id: string, text: string): void {
  const target = byId(id);
  if (target.textContent !== text) target.textContent = text;
}

function drawTables(snapshot: LabSnapshot): void {
  const select = byId<HTMLSelectElement>('table-node');
  setOptions(
    select,
    snapshot.nodes.map((node) => ({ value: node.name, label: node.name })),
  );
  const node = snapshot.nodes.find((candidate) => candidate.name === select.value) ?? snapshot.nodes[0];
  if (node === undefined) return;
  setText('prompt-route', `root@${node.name}:/# route -n`);
  setText('prompt-ip-route', `root@${node.name}:/# ip route`);
  setText('prompt-ip-addr', `root@${node.name}:/# ip addr`);
  setText('table-route', node.tables.route);
  setText('table-ip-route', node.tables.ipRoute);
  setText('table-ip-addr', node.tables.ipAddr);
}

function drawChoices(snapshot: LabSnapshot): void {
  const pods = snapshot.nodes.flatMap((node) =>
    node.pods.map((pod) => ({ value: pod.name, label: `${pod.name} (${pod.ip})`, group: `pods on ${node.name}` })),
  );
  const nodes = snapshot.nodes.map((node) => ({
    value: node.name,
    label: `${node.name} (${node.ip})`,
    group: "nodes' own stacks",
  }));
  const tunnelAddresses = snapshot.nodes.flatMap((node) =>
    node.tunnelAddress === null
      ? []
      : [
          {
            value: node.tunnelAddress,
            label: `${node.name}'s tunl0 (${node.tunnelAddress})`,
            group: 'tunnel addresses',
          },
        ],
  );
  setOptions(byId<HTMLSelectElement>('trace-from'), [...pods, ...nodes]);
  setOptions(byId<HTMLSelectElement>('trace-to'), [...pods, ...nodes, ...tunnelAddresses]);
}

// ---------------------------------------------------------------------------------------------------------------------
// A trace, hop by hop

function hexDump(hex: string): { dump: HTMLElement; bytes: HTMLElement[] } {
  const bytes: HTMLElement[] = [];
  const dump = element('div', { class: 'hexdump' });
  const count = hex.length / 2;
  for (let row = 0; row < count; row += 16) {
    const line = element(
      'div',
      { class: 'hexrow' },
      element('span', { class: 'offset' }, row.toString(16).padStart(4, '0')),
    );
    const ascii = element('span', { class: 'ascii' });
    for (let index = row; index < Math.min(row + 16, count); index++) {
      const pair = hex.slice(index * 2, index * 2 + 2);
      const code = parseInt(pair, 16);
      const byte = element('span', { class: 'byte' }, pair);
      const char = element('span', { class: 'char' }, code >= 0x20 && code < 0x7f ? String.fromCharCode(code) : '.');
      line.append(byte);
      ascii.append(char);
      bytes.push(byte, char);
    }
    line.append(ascii);
    dump.append(line);
  }
  return { dump, bytes };
}

/** `before`: the keys of the packet at the hop before, so that a header the hop added reads as new, not changed. */
function packetPane(packet: HopPacket, before: ReadonlySet<string>, open: boolean): HTMLElement {
  const changed = new Set(packet.changed);
  const length = packet.hex.length / 2;
  let bytes: HTMLElement[] = [];
  const bytesBox = element('details', { class: 'bytes' }, element('summary', {}, `Bytes (${length})`));
  const showBytes = () => {
    if (bytes.length > 0) return;
    const made = hexDump(packet.hex);
    bytes = made.bytes;
    bytesBox.append(made.dump);
  };
  bytesBox.addEventListener('toggle', () => bytesBox.open && showBytes());
  if (length <= BYTES_SHOWN_AT_ONCE) {
    bytesBox.open = true;
    showBytes();
  }
  const light = (offset: number, count: number, on: boolean) => {
    for (let index = offset; index < offset + count && index < length; index++) {
      bytes[index * 2]?.classList.toggle('lit', on);
      bytes[index * 2 + 1]?.classList.toggle('lit', on);
    }
  };
  const layers = packet.layers.map((layer) =>
    element(
      'details',
      { class: 'layer', open: '' },
      element('summary', {}, layer.title),
      ...layer.fields.map((field) => {
        const isChanged = changed.has(field.key);
        const row = element(
          'div',
          {
            class: isChanged ? 'field changed' : 'field',
            'data-testid': 'field',
            'data-key': field.key,
            'data-changed': String(isChanged),
            title: `bytes ${field.offset}–${field.offset + field.length - 1}`,
          },
          element('span', { class: 'field-label' }, `${field.label}: `),
          element('span', { class: 'field-value', 'data-testid': 'field-value' }, field.value),
          isChanged && element('span', { class: 'changed-mark' }, before.has(field.key) ? 'changed' : 'new'),
        );
        row.addEventListener('mouseenter', () => light(field.offset, field.length, true));
        row.addEventListener('mouseleave', () => light(field.offset, field.length, false));
        return row;
      }),
    ),
  );
  const added = packet.changed.filter((key) => !before.has(key)).length;
  const notes = [
    packet.changed.length > added ? `${packet.changed.length - added} changed` : '',
    added > 0 ? `${added} new` : '',
  ].filter((note) => note !== '');
  const changedNote = notes.map((note) => `, ${note}`).join('');
  const pane = element(
    'details',
    { class: 'packet' },
    element('summary', {}, `Fields and bytes (${length} bytes${changedNote})`),
    element('div', { class: 'packet-body' }, element('div', { class: 'layers' }, ...layers), bytesBox),
  );
  pane.open = open;
  return pane;
}

function routePane(route: NonNullable<Hop['route']>): HTMLElement {
  const candidates = new Map(route.candidates.map((candidate) => [candidate.line, candidate.prefixLength]));
  const lines = route.lines.map((line, index) => {
    const matched = index === route.matched;
    const prefixLength = candidates.get(index);
    return element(
      'div',
      {
        class: ['route-line', matched ? 'matched' : '', prefixLength !== undefined ? 'candidate' : ''].join(' ').trim(),
        ...(matched ? { 'data-testid': 'route-matched' } : {}),
      },
      element('span', { class: 'route-mark' }, matched ? '▶' : prefixLength !== undefined ? '·' : ' '),
      element('code', {}, line),
      prefixLength !== undefined && element('span', { class: 'prefix-length' }, `/${prefixLength}`),
    );
  });
  return element(
    'div',
    { class: 'route' },
    element('div', { class: 'route-lines' }, ...lines),
    element('p', { class: 'why' }, route.why),
  );
}

const DIRECTION_WORDS = { rx: 'in', tx: 'out' } as const;

function hopElement(
  hop: Hop,
  index: number,
  pathName: 'forward' | 'reply',
  before: ReadonlySet<string>,
  open: boolean,
): HTMLElement {
  const timing = hop.atNs === undefined ? null : `+${(hop.atNs / 1000).toFixed(0)} µs`;
  return element(
    'li',
    {
      class: `hop ${hop.kind}`,
      'data-testid': 'hop',
      'data-path': pathName,
      'data-kind': hop.kind,
      'data-node': hop.node,
      'data-interface': hop.interface.split(' ')[0] ?? '',
      'data-direction': hop.direction ?? '',
    },
    element(
      'div',
      { class: 'hop-head' },
      element('span', { class: 'hop-index' }, String(index + 1)),
      element('span', { class: 'hop-node' }, hop.node),
      hop.interface !== '' &&
        element(
          'span',
          { class: 'hop-interface' },
          hop.interface + (hop.direction === undefined ? '' : ` ${DIRECTION_WORDS[hop.direction]}`),
        ),
      element('strong', { class: 'hop-title' }, hop.title),
      timing !== null && element('span', { class: 'hop-time' }, timing),
    ),
    element('p', { class: 'hop-note' }, hop.note),
    hop.packet !== undefined && element('p', { class: 'packet-summary' }, hop.packet.summary),
    hop.route !== undefined && routePane(hop.route),
    hop.packet !== undefined && packetPane(hop.packet, before, open),
  );
}

/** The hop that shows the packet inside its outer header: the one a reader opens first. */
function firstEncapsulated(hops: Hop[]): number {
  return hops.findIndex((hop) =>
    hop.packet?.layers.some((layer) => layer.fields.some((f) => f.key.startsWith('outer.'))),
  );
}

function traceElement(result: TraceResult): HTMLElement {
  const path = (title: string, hops: Hop[], pathName: 'forward' | 'reply') => {
    const opened = firstEncapsulated(hops);
    let keys = new Set<string>();
    const before = hops.map((hop) => {
      const previous = keys;
      if (hop.packet !== undefined)
        keys = new Set(hop.packet.layers.flatMap((layer) => layer.fields.map((f) => f.key)));
      return previous;
    });
    return element(
      'section',
      { class: `path ${pathName}` },
      element('h3', {}, title),
      hops.length === 0
        ? element('p', { class: 'hint' }, 'No packet.')
        : element(
            'ol',
            { class: 'hops' },
            ...hops.map((hop, index) => hopElement(hop, index, pathName, before[index], index === opened)),
          ),
    );
  };
  return element(
    'div',
    { class: 'trace-result', 'data-testid': 'trace-result', 'data-outcome': result.outcome },
    element(
      'p',
      { class: `outcome ${result.outcome.replace(/ /g, '-')}` },
      element('strong', {}, result.outcome),
      ' ',
      element('span', { 'data-testid': 'trace-summary' }, result.summary),
      ' ',
      element('a', { href: result.pcapng, download: '', 'data-testid': 'trace-pcapng' }, 'Download the trace (pcapng)'),
    ),
    element('pre', { class: 'tool-output', 'data-testid': 'trace-tool-output' }, result.toolOutput),
    path('The request', result.forward, 'forward'),
    path('The reply', result.reply, 'reply'),
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// The page

class LabPage {
  private snapshot: LabSnapshot | null = null;
  private examplesFor: string | null = null;
  private traced: Traced = { nodes: new Set(), pods: new Set(), tunnels: new Set() };

  async start(): Promise<void> {
    byId('table-node').addEventListener('change', () => this.snapshot && drawTables(this.snapshot));
    byId('trace-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.runForm();
    });
    await this.poll();
    setInterval(() => void this.poll(), POLL_MS);
  }

  private async poll(): Promise<void> {
    try {
      const snapshot = await api<LabSnapshot>('/api/lab');
      this.snapshot = snapshot;
      setText('lab-name', snapshot.lab);
      const down = snapshot.nodes.filter((node) => node.error !== undefined);
      setText(
        'lab-status',
        down.length === 0
          ? `${snapshot.nodes.length} nodes, ${snapshot.nodes.reduce((sum, node) => sum + node.pods.length, 0)} pods, as of ${new Date(snapshot.takenAt).toLocaleTimeString()}`
          : `${down.map((node) => `${node.name}: ${node.error}`).join('; ')}`,
      );
      drawTopology(snapshot, this.traced);
      drawTables(snapshot);
      drawChoices(snapshot);
      // The examples name pods: they change when the pods do.
      const pods = snapshot.nodes.flatMap((node) => node.pods.map((pod) => pod.name)).join(' ');
      if (pods !== this.examplesFor) {
        this.examplesFor = pods;
        await this.loadExamples();
      }
      document.body.dataset.ready = 'true';
    } catch (error) {
      setText(
        'lab-status',
        `The page's server does not answer: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  private async loadExamples(): Promise<void> {
    const examples = await api<TraceExample[]>('/api/examples').catch(() => []);
    byId('examples').replaceChildren(
      ...examples.map((example) => {
        const button = element(
          'button',
          {
            type: 'button',
            class: 'example',
            'data-testid': 'example',
            'data-example': example.id,
            title: example.description,
          },
          element('strong', {}, example.title),
          element('span', {}, example.description),
        );
        button.addEventListener('click', () => {
          this.fillForm(example.request);
          void this.trace(example.request);
        });
        return button;
      }),
    );
  }

  private fillForm(request: TraceRequest): void {
    byId<HTMLSelectElement>('trace-from').value = request.from;
    const to = byId<HTMLSelectElement>('trace-to');
    const listed = [...to.options].some((option) => option.value === request.to);
    to.value = listed ? request.to : to.value;
    byId<HTMLInputElement>('trace-to-address').value = listed ? '' : request.to;
    byId<HTMLSelectElement>('trace-protocol').value = request.protocol;
    byId<HTMLInputElement>('trace-size').value = request.size === undefined ? '' : String(request.size);
    byId<HTMLInputElement>('trace-df').checked = request.df;
  }

  private runForm(): Promise<void> {
    const address = byId<HTMLInputElement>('trace-to-address').value.trim();
    const size = byId<HTMLInputElement>('trace-size').value.trim();
    const request: TraceRequest = {
      from: byId<HTMLSelectElement>('trace-from').value,
      to: address !== '' ? address : byId<HTMLSelectElement>('trace-to').value,
      protocol: byId<HTMLSelectElement>('trace-protocol').value as TraceProtocol,
      df: byId<HTMLInputElement>('trace-df').checked,
      ...(size === '' ? {} : { size: Number(size) }),
    };
    return this.trace(request);
  }

  private async trace(request: TraceRequest): Promise<void> {
    if (document.body.dataset.tracing === 'true') return;
    document.body.dataset.tracing = 'true';
    const button = byId<HTMLButtonElement>('trace-run');
    button.disabled = true;
    setText('trace-error', '');
    const target = byId('trace');
    target.replaceChildren(element('p', { class: 'hint' }, `Tracing ${request.from} → ${request.to}…`));
    try {
      const result = await api<TraceResult>('/api/traces', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      target.replaceChildren(traceElement(result));
      const crossings = (hops: Hop[]) =>
        hops.flatMap((hop, index) =>
          index > 0 && hops[index - 1].node !== hop.node ? [`${hops[index - 1].node} ${hop.node}`] : [],
        );
      this.traced = {
        nodes: new Set([...result.forward, ...result.reply].map((hop) => hop.node)),
        pods: new Set([request.from, request.to]),
        tunnels: new Set([...crossings(result.forward), ...crossings(result.reply)]),
      };
      if (this.snapshot !== null) drawTopology(this.snapshot, this.traced);
    } catch (error) {
      target.replaceChildren();
      setText('trace-error', error instanceof Error ? error.message : String(error));
    } finally {
      button.disabled = false;
      delete document.body.dataset.tracing;
    }
  }
}

void new LabPage().start();
