/**
 * The agent commands on the host, outside every node container: they must not touch a lab address (the lab network
 * is internal, and 10.x traffic from here could leave the machine), so each refuses before connecting and says how
 * to run it inside a node container.
 */
import { describe, expect, test } from 'vitest';
import { cli, SEED_CNI_OVERVIEW } from '../support/cli.js';

describe('on the host', () => {
  test.each([
    [
      ['ping', '192.168.158.1', '--from', 'hello-world-7597b4f945-fwv7r'],
      'worker-node01 ipip-lab ping 192.168.158.1 --from hello-world-7597b4f945-fwv7r',
    ],
    [
      ['curl', 'http://192.168.158.1:8080/', '--from', 'hello-world-7597b4f945-zfzzk'],
      'worker-node02 ipip-lab curl http://192.168.158.1:8080/',
    ],
    [
      ['traceroute', '192.168.158.1', '--from', 'hello-world-7597b4f945-fwv7r'],
      'worker-node01 ipip-lab traceroute 192.168.158.1',
    ],
    [['stats', '--node', 'worker-node02'], 'worker-node02 ipip-lab stats --node worker-node02'],
    [['api', 'GET', '/v1/node'], 'worker-node01 ipip-lab api GET /v1/node'],
  ])('ipip-lab %j refuses and points at docker compose exec', async (args, hint) => {
    const result = await cli(...args, '--spec', SEED_CNI_OVERVIEW);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('only the node containers are on');
    expect(result.stderr).toContain(`docker compose exec ${hint}`);
  });

  test('a pod that does not exist is named with the pods that do', async () => {
    const result = await cli('ping', '192.168.158.1', '--from', 'nginx', '--spec', SEED_CNI_OVERVIEW);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('pods "nginx" not found (pods: hello-world-');
  });

  test('inject wants exactly one of --hex and --file', async () => {
    const result = await cli('inject', '--interface', 'eth0', '--spec', SEED_CNI_OVERVIEW);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('exactly one of --hex or --file');
  });

  test('node --help explains what the agent needs and how it exits', async () => {
    const result = await cli('node', '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('CAP_NET_RAW');
    expect(result.stdout).toContain('SIGTERM');
  });
});
