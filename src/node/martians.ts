/** Address classes the kernel's input route refuses (`ip_route_input_slow`, `fib_validate_source`). */

export const LIMITED_BROADCAST = 0xffffffff;

export function isMulticast(address: number): boolean {
  return address >>> 28 === 0xe;
}

/** 0.0.0.0/8 and 127.0.0.0/8, which `ip_route_input_slow` refuses in either direction. */
export function isZeroOrLoopback(address: number): boolean {
  const first = address >>> 24;
  return first === 0 || first === 127;
}
