#!/usr/bin/env node
// Regenerates the README's lab walkthrough from a real run: brings the first seed's lab up from a clean state
// (docker compose down -v first: it forgets any Deployment applied to the lab), types each of the course's commands
// in a node container through `docker compose exec`, and writes the commands with what they printed between the
// README's walkthrough markers. Run from anywhere: node scripts/walkthrough.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = path.join(root, 'README.md');
const START = '<!-- walkthrough:start -->';
const END = '<!-- walkthrough:end -->';

function compose(...args) {
  execFileSync('docker', ['compose', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Runs `lines` in one bash on `node`, as typed at its prompt, and returns what the terminal would show (stdout and
 * stderr together). `mayFail`: a step that shows an error on purpose.
 */
function typed(node, lines, { mayFail = false } = {}) {
  const script = `exec 2>&1\n${lines.join('\n')}`;
  const result = spawnSync('docker', ['compose', 'exec', '-T', node, 'bash', '-c', script], {
    cwd: root,
    encoding: 'utf8',
  });
  if (result.status !== 0 && !mayFail) {
    throw new Error(`on ${node}: ${lines.join('; ')} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/** The README's prose is wrapped at 120 columns. */
function wrap(text, width = 120) {
  const lines = [''];
  for (const word of text.split(' ')) {
    const last = lines.length - 1;
    if (lines[last] !== '' && lines[last].length + 1 + word.length > width) lines.push(word);
    else lines[last] = lines[last] === '' ? word : `${lines[last]} ${word}`;
  }
  return lines.join('\n');
}

const fence = (lang, text) => `\`\`\`${lang}\n${text.replace(/\n+$/, '')}\n\`\`\`\n`;

/** The prompt of a shell in a pod (`kubectl exec -it POD -- /bin/sh`), as the course's busybox shell shows it. */
const POD_PROMPT = '/ # ';

/**
 * One step: what the course says, the commands as typed at the node's prompt, and what our lab printed. `run`: the
 * script that types them, when it is not the lines themselves (lines typed into a pod's shell go on its input).
 */
function step(prose, node, lines, { run = lines, ...options } = {}) {
  const output = typed(node, run, options);
  // A line already prompted (`/ # ip addr`) was typed into the pod's shell, not the node's.
  const prompted = lines.map((line) => (line.startsWith(POD_PROMPT) ? line : `${node}$ ${line}`));
  return `${wrap(prose)}\n\n${fence('bash', prompted.join('\n'))}\n${output ? fence('', output) : ''}`;
}

const PODNAME = "PODNAME=$(kubectl get pods --selector=app=hello-world -o jsonpath='{.items[0].metadata.name}')";

function walkthrough() {
  const steps = [
    step("**Get the nodes and their IPs.** INTERNAL-IP is the node's real address: the node network.", 'master-node', [
      'kubectl get nodes -o wide',
    ]),
    step(
      '**Deploy hello-world with 3 replicas.** The course runs this in the folder holding `deployment.yml`; the ' +
        "node containers start in `/lab`, which holds it. The lab has no API server: apply writes the Deployment into the lab's " +
        'spec, which every node shares, and every node agent rebuilds its pods and routes from it.',
      'master-node',
      ['kubectl apply -f deployment.yml'],
    ),
    step(
      "**Get the pods.** Each has an IP from the pool `192.168.0.0/16`, handed out by Calico's IPAM from its node's block.",
      'master-node',
      ['kubectl get pods -o wide'],
    ),
    step(
      "**Look at a pod's interfaces.** The course opens a shell in the pod and types `ip addr` there: the pod is a " +
        "network namespace of its node's kernel, so the shell is a real one and `ip` shows the pod's eth0 with its /32 " +
        '(its other end is a cali… veth on the node).',
      'master-node',
      [PODNAME, 'echo $PODNAME', 'kubectl exec -it $PODNAME -- /bin/sh', `${POD_PROMPT}ip addr`, `${POD_PROMPT}exit`],
      { run: [PODNAME, 'echo $PODNAME', "printf 'ip addr\\nexit\\n' | kubectl exec -i $PODNAME -- /bin/sh"] },
    ),
    step(
      "**Describe the node.** `master` is the course's word too: kubectl describe takes a name prefix, so it shows " +
        "master-node. See the Calico annotations, the Addresses, the PodCIDRs, and, added by ipip-lab, the node's " +
        'Calico blocks: the answer to "why aren\'t the pods in PodCIDR?".',
      'master-node',
      ['kubectl describe node master'],
    ),
    step(
      "**The routes on master-node.** net-tools' own `route`, on the node container's kernel table, where the agent " +
        "put Calico's routes: each other node's block goes via that node through tunl0 (UG), its own block is a " +
        'blackhole (U, `*`).',
      'master-node',
      ['route'],
    ),
    step('**The tunnel interface on master-node.**', 'master-node', ['ip addr']),
    step(
      "**From worker-node01's side** (open a second terminal: `docker compose exec worker-node01 bash`). Its tunl0 has the " +
        'first address of its block; its routes lead back to master-node and worker-node02 through tunl0, and to its own ' +
        'pods through their cali interfaces (UH).',
      'worker-node01',
      ['ip addr', 'route'],
    ),
  ];
  const pods = JSON.parse(typed('master-node', ['kubectl get pods -o json'])).items;
  const on = (node) => pods.find((pod) => pod.spec.nodeName === node);
  const [a, b] = [on('worker-node01'), on('worker-node02')];
  steps.push(
    step(
      '**Beyond the course: send traffic through the tunnel.** A pod on worker-node01 pings and fetches from a pod on ' +
        'worker-node02 (TTL 62: two routing hops), with the real ping and curl in the pod; tunl0 counted the packets. ' +
        '`tcpdump -ni tunl0` shows them inside the tunnel, `tcpdump -ni eth0 ip proto 4` on the wire, encapsulated.',
      'worker-node01',
      [
        `kubectl exec ${a.metadata.name} -- ping -c 3 ${b.status.podIP}`,
        `kubectl exec ${a.metadata.name} -- curl -s http://${b.status.podIP}:8080/`,
        'ifconfig tunl0',
      ],
    ),
    step('**Clean up.**', 'master-node', ['kubectl delete -f deployment.yml']),
  );
  return steps.join('\n');
}

const INTRO = `## The lab walkthrough: the first seed, step by step

This follows the course's "CNI Network Overview" on the lab. Where the course types \`vagrant ssh master\`, open a
shell on the node container; everything after \`master-node$\` is typed there. Every output below is what the lab
printed when \`node scripts/walkthrough.mjs\` last ran these commands (it rewrites this section).

\`\`\`bash
docker compose up -d --build --wait         # builds the node image the first time; returns once every node is healthy
docker compose exec master-node bash        # a shell on master-node, with a banner of what the node is
\`\`\`

`;

const OUTRO = `
\`docker compose down\` stops the lab (in under a second); applied Deployments survive it, as a cluster's store
would, and \`docker compose down -v\` forgets them.

### Where the output differs from the course's real cluster, and why

- **AGE, OS-IMAGE, KERNEL-VERSION, CONTAINER-RUNTIME** are the lab's own: a node's age is its agent's uptime (and a
  pod's is its node's), the nodes are Debian 12 containers on the host's kernel, and their pods are run by ipip-lab,
  hence \`ipip-lab://0.1.0\` instead of \`docker://20.10.8\`.
- **ROLES** come from the spec: the course labelled its workers \`node-role.kubernetes.io/worker\` by hand, so
  \`containers/cni-overview/lab.yaml\` labels them too; kind's workers (the second seed) show \`<none>\`.
- **Pod names** differ in their pod-template-hash: Kubernetes hashes a dump of Go structs; we hash the template's
  canonical JSON (same alphabet and length, not the same value). Names, IPs and MACs are deterministic, so every node
  agrees on them without talking; the course's MACs are random.
- **Which node runs which pod**: kube-scheduler breaks ties at random, ours by spec order, so worker-node01 gets two
  pods where the course's worker-node02 did. Pod IPs start at each block's first free address because this cluster
  never ran other pods; the blocks and tunnel addresses themselves (192.168.77.128, 192.168.87.192, 192.168.158.0)
  are the course's, from Calico's own hostname-seeded block choice.
- **No system pods**: no calico-node, coredns, kube-proxy, calico-kube-controllers. So master-node has no cali
  routes (the course's five were system pods), \`kubectl get pods -A\` lists only the workloads (it says so on
  stderr), and \`describe node\` lists no kubeadm cri-socket annotation.
- **Routes and interfaces of the node itself**: the nodes are containers on one internal Docker network, so the
  default route goes to Docker's bridge (\`10.0.0.1\`, which nothing routes beyond) where the course's reads
  \`_gateway\` (Ubuntu's resolver names it), and there is no VirtualBox NAT (\`10.0.2.0\`, eth0 there), no \`eth1\`, no
  \`docker0\`; the node network is on eth0. Interface indexes are small (tunl0 is 2, not 7 or 8).
- **tunl0 is a TUN device**, not the ipip module's device (this host's kernel has no ipip module; the agent does the
  encapsulation): \`ip addr\` shows \`tunl0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> … qdisc pfifo_fast\` and
  \`link/none\` where a real node shows \`tunl0@NONE: <NOARP,UP,LOWER_UP> … qdisc noqueue\` and \`link/ipip 0.0.0.0\`;
  \`ifconfig tunl0\` shows \`flags=4305<UP,POINTOPOINT,RUNNING,NOARP,MULTICAST>\` and \`unspec\` where the course's shows
  \`flags=193<UP,RUNNING,NOARP>\` and \`tunnel … (IPIP Tunnel)\`. \`ipip-lab ip addr\` and \`ipip-lab ifconfig\` print
  the real device's lines from the spec.
- **Inside a pod**, \`ip\` is iproute2's (the node image's), not the pod image's busybox: it prints \`group default\`,
  \`link-netnsid 0\` and no \`M-DOWN\`, and there is no \`tunl0@NONE\` in the pod (a real pod gets one because the
  ipip module is loaded in every namespace). The shell is the node image's \`/bin/sh\` with the pod's network
  namespace and its own hostname (the pod's name), on the node's filesystem.
- **apply/delete** rewrite the lab's spec and every agent converges its node: new pods get a namespace and a veth,
  gone ones lose theirs, routes are added and deleted; the other pods are not touched. A Deployment applied again gets
  the same pod names and IPs; a real cluster would hand out new ones.

### The second seed's cluster (kind "networking")

One control plane and three workers on 172.20.0.0/16, named and addressed as kind names them, with the same pool:

\`\`\`bash
scripts/lab.sh networking up -d --build --wait   # says which Docker network holds 172.20.0.0/16, if one does
scripts/lab.sh networking exec networking-control-plane bash
networking-control-plane$ kubectl apply -f ./csi-calico-demo/Deployment.yaml
networking-control-plane$ kubectl get nodes -o wide
networking-control-plane$ kubectl get pods -A -o wide | grep networking-worker2
networking-control-plane$ kubectl describe node networking-control-plane
networking-control-plane$ kubectl debug node/networking-control-plane -it --image=ubuntu   # the course's node shell
networking-control-plane$ route                                       # the course's route (net-tools is installed)
networking-control-plane$ ifconfig tunl0                              # the course's ifconfig
scripts/lab.sh networking down -v
\`\`\`
`;

function main() {
  compose('down', '-v', '--remove-orphans');
  compose('up', '-d', '--build', '--wait');
  try {
    const readme = readFileSync(README, 'utf8');
    const start = readme.indexOf(START);
    const end = readme.indexOf(END);
    if (start < 0 || end < start) throw new Error(`README.md has no ${START} … ${END} section`);
    const section = `${START}\n${INTRO}${walkthrough()}${OUTRO}${END}`;
    writeFileSync(README, readme.slice(0, start) + section + readme.slice(end + END.length));
    console.log('README.md: walkthrough rewritten from this run');
  } finally {
    compose('down', '-v');
  }
}

main();
