/**
 * `kubectl exec` over the agent API: a command run in a pod, with its standard streams carried over one upgraded
 * HTTP connection (`POST /v1/exec?pod=…&tty=1&arg=…` with `Upgrade: ipip-lab-exec`, then 101), so that a shell
 * on a pod of another node is as interactive as one here.
 *
 * After the 101 the client sends its standard input as raw bytes and half-closes at its end; the agent sends frames
 * of [kind: u8][length: u32 BE][bytes], kind 1 standard output, 2 standard error, 3 the exit code (an int32 BE),
 * after which it closes.
 */
export const EXEC_PATH = '/v1/exec';
export const EXEC_UPGRADE = 'ipip-lab-exec';

export const EXEC_FRAME = { stdout: 1, stderr: 2, exit: 3 } as const;

const FRAME_HEADER = 5;

export function execFrame(kind: number, data: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER + data.length);
  frame[0] = kind;
  frame.writeUInt32BE(data.length, 1);
  data.copy(frame, FRAME_HEADER);
  return frame;
}

export function exitFrame(code: number): Buffer {
  const data = Buffer.allocUnsafe(4);
  data.writeInt32BE(code);
  return execFrame(EXEC_FRAME.exit, data);
}

/** Splits a byte stream into frames as they complete; `push` returns the frames that the new bytes finished. */
export class ExecFrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { kind: number; data: Buffer }[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: { kind: number; data: Buffer }[] = [];
    while (this.pending.length >= FRAME_HEADER) {
      const length = this.pending.readUInt32BE(1);
      if (this.pending.length < FRAME_HEADER + length) break;
      frames.push({ kind: this.pending[0], data: this.pending.subarray(FRAME_HEADER, FRAME_HEADER + length) });
      this.pending = this.pending.subarray(FRAME_HEADER + length);
    }
    return frames;
  }
}
