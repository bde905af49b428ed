/**
 * NOTIFICATION codes in BIRD's words, as `show protocols` and its log print them after `Received: ` or
 * `BGP Error: ` (BIRD 1.6 proto/bgp/packets.c, bgp_msg_table and bgp_error_dsc).
 */
const DESCRIPTIONS: Readonly<Record<string, string>> = {
  '1.0': 'Invalid message header',
  '1.1': 'Connection not synchronized',
  '1.2': 'Bad message length',
  '1.3': 'Bad message type',
  '2.0': 'Invalid OPEN message',
  '2.1': 'Unsupported version number',
  '2.2': 'Bad peer AS',
  '2.3': 'Bad BGP identifier',
  '2.4': 'Unsupported optional parameter',
  '2.5': 'Authentication failure',
  '2.6': 'Unacceptable hold time',
  '2.7': 'Required capability missing',
  '2.8': 'No supported AFI/SAFI',
  '3.0': 'Invalid UPDATE message',
  '3.1': 'Malformed attribute list',
  '3.2': 'Unrecognized well-known attribute',
  '3.3': 'Missing mandatory attribute',
  '3.4': 'Invalid attribute flags',
  '3.5': 'Invalid attribute length',
  '3.6': 'Invalid ORIGIN attribute',
  '3.7': 'AS routing loop',
  '3.8': 'Invalid NEXT_HOP attribute',
  '3.9': 'Optional attribute error',
  '3.10': 'Invalid network field',
  '3.11': 'Malformed AS_PATH',
  '4.0': 'Hold timer expired',
  '5.0': 'Finite state machine error',
  '5.1': 'Unexpected message in OpenSent state',
  '5.2': 'Unexpected message in OpenConfirm state',
  '5.3': 'Unexpected message in Established state',
  '6.0': 'Cease',
  '6.1': 'Maximum number of prefixes reached',
  '6.2': 'Administrative shutdown',
  '6.3': 'Peer de-configured',
  '6.4': 'Administrative reset',
  '6.5': 'Connection rejected',
  '6.6': 'Other configuration change',
  '6.7': 'Connection collision resolution',
  '6.8': 'Out of Resources',
  '7.0': 'Invalid ROUTE-REFRESH message',
  '7.1': 'Invalid ROUTE-REFRESH message length',
};

export function bgpErrorText(code: number, subcode: number): string {
  return DESCRIPTIONS[`${code}.${subcode}`] ?? `Unknown error ${code}.${subcode}`;
}

/** strerror's words for a socket error, as BIRD prints them after `Socket: `. */
export function socketErrorText(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'Connection refused';
    case 'ECONNRESET':
      return 'Connection reset by peer';
    case 'ETIMEDOUT':
      return 'Connection timed out';
    case 'EHOSTUNREACH':
      return 'No route to host';
    case 'ENETUNREACH':
      return 'Network is unreachable';
    case 'EPIPE':
      return 'Broken pipe';
    default:
      return error.message;
  }
}
