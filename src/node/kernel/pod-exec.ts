/**
 * A command in a kernel-backed pod: `nsenter --net=/run/netns/cni-…` runs the node image's real tool with the pod's
 * network namespace, so `ip addr`, `ping`, `curl` and a shell see the pod's eth0, its /32 and its routes. With a
 * terminal, util-linux's `script` gives the command a pseudo-terminal of its own, as a container runtime does for
 * `kubectl exec -it`.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** POSIX shell quoting: `script -c` hands its command line to a shell. */
function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function spawnCommand(command: readonly string[], tty: boolean, env: NodeJS.ProcessEnv, cwd: string): ChildProcess {
  if (!tty) return spawn(command[0], command.slice(1), { stdio: 'pipe', env, cwd });
  // -e: script exits with the command's status; -f flushes each write, so the shell's prompt shows at once.
  return spawn('script', ['-qefc', command.map(quote).join(' '), '/dev/null'], { stdio: 'pipe', env, cwd });
}

/**
 * In the pod's network namespace and a UTS namespace of its own whose hostname is the pod's name, as in a pod, so
 * that `hostname` and the shell's prompt name the pod.
 */
export function spawnInPod(netnsPath: string, podName: string, command: readonly string[], tty: boolean): ChildProcess {
  const named = ['unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', podName, ...command];
  // In /, with the prompt of the course's pod shell (busybox's root prompt).
  return spawnCommand(
    ['nsenter', `--net=${netnsPath}`, '--', ...named],
    tty,
    { ...process.env, HOSTNAME: podName, PS1: '/ # ' },
    '/',
  );
}

/** The node's own shell or tool, for `kubectl debug node/NAME`: the container's namespaces, unchanged. */
export function spawnOnNode(nodeName: string, command: readonly string[], tty: boolean): ChildProcess {
  return spawnCommand(command, tty, { ...process.env, HOSTNAME: nodeName }, '/');
}
