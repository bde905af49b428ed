/*
 * ipip-bench: the C side of `npm run bench`'s forwarding benchmark. Not part of the product: the benchmark compiles
 * it from this file and copies it into its containers.
 *
 *   ipip-bench reflect [--lifetime S]
 *       The baseline data path: every IPIP packet that carries an ICMP echo request goes straight back as the echo
 *       reply a node's pod would send, outer and inner addresses swapped, with recvmmsg/sendmmsg in batches. The
 *       practical ceiling of a userspace relay on these containers.
 *   ipip-bench blast   ADDRESSES --size BYTES (--window N | --rate PPS) --duration S [--count N]
 *       Load: echo requests from a pod behind this machine to a pod behind --dst, as a kernel node would tunnel them;
 *       counts the echo replies. --window keeps N requests in flight (the highest rate the far side sustains);
 *       --rate paces them open loop (loss at a given rate). Prints one JSON object.
 *   ipip-bench pingpong ADDRESSES --size BYTES --count N --duration S
 *       One request in flight at a time, until N were sent or S seconds passed (a request unanswered for a second is
 *       lost); prints the round-trip times' percentiles in microseconds as JSON.
 *
 * ADDRESSES: --src NODE_IP --dst NODE_IP --inner-src POD_IP --inner-dst POD_IP. --size is the inner packet's total
 * length (84: a default ping). Sending and receiving share one raw IPPROTO_IPIP socket with IP_HDRINCL, so the
 * outer header on the wire is the one built here. Every run is bounded by --duration or --count.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IPPROTO_IPIP_ 4
#define IP_HEADER 20
#define ICMP_HEADER 8
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8
#define BATCH 64
#define SLOT 2048
/* Largest inner packet that still fits the 1500-byte underlay with the outer header. */
#define MAX_INNER 1480
#define MIN_INNER (IP_HEADER + ICMP_HEADER)
/* A kernel node forwarding its pod's packet into the tunnel: inner TTL 64 - 1, and the outer header inherits it. */
#define TUNNELLED_TTL 63
/* The window is refilled when no reply came for this long: what was in flight is counted lost. */
#define STALL_NS 20000000LL
/* How long replies may still arrive after the last request. */
#define DRAIN_NS 300000000LL
#define PINGPONG_TIMEOUT_NS 1000000000LL
/* Open-loop pacing: at most this many requests back to back, and at most this late before the schedule restarts. */
#define MAX_BURST 8
#define MAX_LAG_NS 200000LL
/* Shorter waits than this are spun: ppoll would oversleep them. */
#define MIN_SLEEP_NS 20000LL

static _Noreturn void die(const char *what) {
  fprintf(stderr, "ipip-bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

static _Noreturn void usage(const char *problem) {
  fprintf(stderr, "ipip-bench: %s (see the usage at the top of bench/c/ipip-bench.c)\n", problem);
  exit(2);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint16_t checksum(const uint8_t *bytes, size_t length) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < length; i += 2) sum += (uint32_t)(bytes[i] << 8 | bytes[i + 1]);
  if (length & 1) sum += (uint32_t)bytes[length - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* RFC 1624's HC' = ~(~HC + ~m + m'): a checksum after one 16-bit word changed from `before` to `after`. */
static uint16_t checksum_adjusted(uint16_t check, uint16_t before, uint16_t after) {
  uint32_t sum = (uint16_t)~check + (uint16_t)~before + after;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static uint16_t get16(const uint8_t *at) { return (uint16_t)(at[0] << 8 | at[1]); }

static void put16(uint8_t *at, uint16_t value) {
  at[0] = value >> 8;
  at[1] = value & 0xff;
}

static int open_ipip_socket(void) {
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_IPIP_);
  if (fd < 0) die("socket(AF_INET, SOCK_RAW, IPPROTO_IPIP) (needs CAP_NET_RAW)");
  int one = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0) die("IP_HDRINCL");
  /* As much as net.core.rmem_max allows: a burst of replies must not be lost here rather than at the far side. */
  int bytes = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  return fd;
}

/* Packets the kernel dropped at this socket's full receive buffer: replies lost here, not at the far side. */
static long receive_drops(int fd) {
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof meminfo;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) < 0) die("SO_MEMINFO");
  return meminfo[SK_MEMINFO_DROPS];
}

/* Batched I/O buffers: BATCH slots, each with its own address so that a batch may go to several peers. */
struct batch {
  struct mmsghdr headers[BATCH];
  struct iovec iovecs[BATCH];
  struct sockaddr_in addresses[BATCH];
  uint8_t slots[BATCH][SLOT];
};

static void batch_init(struct batch *b) {
  memset(b, 0, sizeof *b);
  for (int i = 0; i < BATCH; i++) {
    b->iovecs[i].iov_base = b->slots[i];
    b->iovecs[i].iov_len = SLOT;
    b->headers[i].msg_hdr.msg_iov = &b->iovecs[i];
    b->headers[i].msg_hdr.msg_iovlen = 1;
    b->headers[i].msg_hdr.msg_name = &b->addresses[i];
    b->headers[i].msg_hdr.msg_namelen = sizeof b->addresses[i];
  }
}

/* Before a receive: recvmmsg overwrites lengths and address lengths. */
static void batch_rearm(struct batch *b, int count) {
  for (int i = 0; i < count; i++) {
    b->iovecs[i].iov_len = SLOT;
    b->headers[i].msg_hdr.msg_namelen = sizeof b->addresses[i];
  }
}

/* Sends the first `count` slots; a full socket buffer is waited out, any other error ends the program. */
static void send_all(int fd, struct batch *b, int count) {
  for (int done = 0; done < count;) {
    int sent = sendmmsg(fd, b->headers + done, count - done, 0);
    if (sent > 0) {
      done += sent;
    } else if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
      struct pollfd out = {.fd = fd, .events = POLLOUT};
      poll(&out, 1, 10);
    } else {
      die("sendmmsg");
    }
  }
}

/* The inner packet's IHL, if `packet` (n bytes) is IPIP carrying an ICMP message of the given type; else 0. */
static int icmp_in_ipip(const uint8_t *packet, int n, uint8_t type) {
  if (n < IP_HEADER || (packet[0] >> 4) != 4 || packet[9] != IPPROTO_IPIP_) return 0;
  int outer = (packet[0] & 0x0f) * 4;
  if (n < outer + IP_HEADER) return 0;
  const uint8_t *inner = packet + outer;
  int inner_header = (inner[0] & 0x0f) * 4;
  if ((inner[0] >> 4) != 4 || inner[9] != IPPROTO_ICMP || n < outer + inner_header + ICMP_HEADER) return 0;
  return inner[inner_header] == type ? outer : 0;
}

static void swap4(uint8_t *a, uint8_t *b) {
  uint8_t t[4];
  memcpy(t, a, 4);
  memcpy(a, b, 4);
  memcpy(b, t, 4);
}

static _Noreturn void reflect(int lifetime_s) {
  int fd = open_ipip_socket();
  /* Bounded even if nobody stops it: SIGALRM's default action ends the process. */
  alarm(lifetime_s);
  static struct batch b;
  batch_init(&b);
  for (;;) {
    batch_rearm(&b, BATCH);
    int received = recvmmsg(fd, b.headers, BATCH, MSG_WAITFORONE, NULL);
    if (received < 0) {
      if (errno == EINTR) continue;
      die("recvmmsg");
    }
    int replies = 0;
    for (int i = 0; i < received; i++) {
      uint8_t *packet = b.slots[i];
      int n = (int)b.headers[i].msg_len;
      int outer = icmp_in_ipip(packet, n, ICMP_ECHO_REQUEST);
      if (outer == 0 || (b.headers[i].msg_hdr.msg_flags & MSG_TRUNC)) continue;
      uint8_t *inner = packet + outer;
      uint8_t *icmp = inner + (inner[0] & 0x0f) * 4;
      /* Swapping addresses leaves every checksum as it was; only the ICMP type word changes. */
      swap4(packet + 12, packet + 16);
      swap4(inner + 12, inner + 16);
      uint16_t before = get16(icmp);
      icmp[0] = ICMP_ECHO_REPLY;
      put16(icmp + 2, checksum_adjusted(get16(icmp + 2), before, get16(icmp)));
      /* Compacted to the front of the batch, each addressed to its own sender. */
      if (replies != i) memcpy(b.slots[replies], packet, n);
      memcpy(&b.addresses[replies].sin_addr, b.slots[replies] + 16, 4);
      b.addresses[replies].sin_family = AF_INET;
      b.iovecs[replies].iov_len = n;
      b.headers[replies].msg_hdr.msg_namelen = sizeof b.addresses[replies];
      replies++;
    }
    send_all(fd, &b, replies);
  }
}

struct flow {
  struct in_addr src, dst, inner_src, inner_dst;
  int size;
  uint16_t ident;
};

/* The echo request a kernel node puts on the wire for its pod: outer and inner headers, ICMP sequence 0. */
static int build_request(const struct flow *flow, uint8_t *packet) {
  int total = IP_HEADER + flow->size;
  memset(packet, 0, total);
  uint8_t *inner = packet + IP_HEADER;
  inner[0] = 0x45;
  put16(inner + 2, flow->size);
  put16(inner + 4, flow->ident);
  inner[6] = 0x40; /* DF, as ping sends a packet that fits */
  inner[8] = TUNNELLED_TTL;
  inner[9] = IPPROTO_ICMP;
  memcpy(inner + 12, &flow->inner_src, 4);
  memcpy(inner + 16, &flow->inner_dst, 4);
  put16(inner + 10, checksum(inner, IP_HEADER));
  uint8_t *icmp = inner + IP_HEADER;
  icmp[0] = ICMP_ECHO_REQUEST;
  put16(icmp + 4, flow->ident);
  for (int i = ICMP_HEADER; i < flow->size - IP_HEADER; i++) icmp[i] = (uint8_t)i;
  put16(icmp + 2, checksum(icmp, flow->size - IP_HEADER));

  packet[0] = 0x45;
  put16(packet + 2, total);
  packet[6] = 0x40; /* the outer DF copies the inner one */
  packet[8] = TUNNELLED_TTL;
  packet[9] = IPPROTO_IPIP_;
  memcpy(packet + 12, &flow->src, 4);
  memcpy(packet + 16, &flow->dst, 4);
  /* The kernel fills in the outer ID (left 0) and the outer checksum of an IP_HDRINCL packet. */
  return total;
}

/* Sets the ICMP sequence number of a request built by build_request, keeping its checksum right. */
static void set_sequence(uint8_t *packet, uint16_t sequence) {
  uint8_t *icmp = packet + 2 * IP_HEADER;
  uint16_t before = get16(icmp + 6);
  put16(icmp + 6, sequence);
  put16(icmp + 2, checksum_adjusted(get16(icmp + 2), before, sequence));
}

/* The sequence number of an echo reply to this flow, or -1 for anything else. */
static int reply_sequence(const struct flow *flow, const uint8_t *packet, int n) {
  int outer = icmp_in_ipip(packet, n, ICMP_ECHO_REPLY);
  if (outer == 0 || memcmp(packet + 12, &flow->dst, 4) != 0) return -1;
  const uint8_t *inner = packet + outer;
  const uint8_t *icmp = inner + (inner[0] & 0x0f) * 4;
  if (get16(icmp + 4) != flow->ident || memcmp(inner + 12, &flow->inner_dst, 4) != 0) return -1;
  return get16(icmp + 6);
}

/* Receives whatever is queued, without waiting; returns the number of replies to this flow. */
static int drain_replies(int fd, const struct flow *flow, struct batch *b) {
  int replies = 0;
  for (;;) {
    batch_rearm(b, BATCH);
    int received = recvmmsg(fd, b->headers, BATCH, MSG_DONTWAIT, NULL);
    if (received <= 0) {
      if (received < 0 && errno != EAGAIN && errno != EINTR) die("recvmmsg");
      return replies;
    }
    for (int i = 0; i < received; i++) {
      if (reply_sequence(flow, b->slots[i], (int)b->headers[i].msg_len) >= 0) replies++;
    }
    if (received < BATCH) return replies;
  }
}

/* Waits up to `timeout_ns` for the socket to become readable; returns at once when it already is. */
static void wait_readable(int fd, int64_t timeout_ns) {
  if (timeout_ns < 0) timeout_ns = 0;
  struct pollfd in = {.fd = fd, .events = POLLIN};
  struct timespec timeout = {.tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL};
  ppoll(&in, 1, &timeout, NULL);
}

struct blast_options {
  int window;
  double rate;
  double duration_s;
  long count;
};

static int blast(const struct flow *flow, const struct blast_options *options) {
  int fd = open_ipip_socket();
  static struct batch out, in;
  batch_init(&out);
  batch_init(&in);
  int length = 0;
  for (int i = 0; i < BATCH; i++) {
    length = build_request(flow, out.slots[i]);
    out.iovecs[i].iov_len = length;
    out.addresses[i].sin_family = AF_INET;
    out.addresses[i].sin_addr = flow->dst;
  }

  long sent = 0, received = 0, received_in_time = 0, stalls = 0, slips = 0;
  long in_flight = 0;
  const int64_t start = now_ns();
  const int64_t end = start + (int64_t)(options->duration_s * 1e9);
  const double interval_ns = options->rate > 0 ? 1e9 / options->rate : 0;
  int64_t last_reply = start;
  double next_due = (double)start;
  uint16_t sequence = 0;
  for (int64_t now = start; now < end && sent < options->count; now = now_ns()) {
    long due = 0;
    if (options->window > 0) {
      if (in_flight >= options->window && now - last_reply > STALL_NS) {
        stalls++;
        in_flight = 0;
      }
      due = options->window - in_flight;
    } else if (now >= next_due) {
      /* Time this process was not scheduled is not made up in one burst, which no peer's socket buffer would
       * absorb: the schedule starts again from now, and the rate reported is the one actually offered. */
      if (now - next_due > MAX_LAG_NS) {
        slips++;
        next_due = (double)now;
      }
      due = 1 + (long)(((double)now - next_due) / interval_ns);
      if (due > MAX_BURST) due = MAX_BURST;
      next_due += due * interval_ns;
    }
    if (due > options->count - sent) due = options->count - sent;
    if (due > BATCH) due = BATCH;
    if (due > 0) {
      for (int i = 0; i < due; i++) set_sequence(out.slots[i], sequence++);
      send_all(fd, &out, (int)due);
      sent += due;
      in_flight += due;
    }
    int replies = drain_replies(fd, flow, &in);
    if (replies > 0) {
      received += replies;
      in_flight = in_flight > replies ? in_flight - replies : 0;
      last_reply = now_ns();
    } else if (options->window > 0 && in_flight >= options->window) {
      wait_readable(fd, STALL_NS);
    } else if (options->window == 0) {
      /* Sleep until the next request is due (or a reply comes), never less than the timer's useful resolution. */
      int64_t wait = (int64_t)next_due - now_ns();
      wait_readable(fd, wait < MIN_SLEEP_NS ? 0 : wait);
    }
  }
  const int64_t sending_ns = now_ns() - start;
  received_in_time = received;
  for (int64_t drain_end = now_ns() + DRAIN_NS; received < sent && now_ns() < drain_end;) {
    wait_readable(fd, drain_end - now_ns());
    received += drain_replies(fd, flow, &in);
  }
  double seconds = (double)sending_ns / 1e9;
  printf("{\"size\":%d,\"outerSize\":%d,\"sent\":%ld,\"received\":%ld,\"lost\":%ld,\"seconds\":%.6f,"
         "\"offeredPerSecond\":%.1f,\"repliesPerSecond\":%.1f,\"windowStalls\":%ld,\"scheduleSlips\":%ld,"
         "\"receiveDrops\":%ld}\n",
         flow->size, length, sent, received, sent > received ? sent - received : 0, seconds, sent / seconds,
         received_in_time / seconds, stalls, slips, receive_drops(fd));
  return 0;
}

static int compare_ns(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int pingpong(const struct flow *flow, long count, double duration_s) {
  if (count > 65536) usage("pingpong: --count is at most 65536 (one ICMP sequence space)");
  int fd = open_ipip_socket();
  static struct batch out, in;
  batch_init(&out);
  batch_init(&in);
  out.iovecs[0].iov_len = build_request(flow, out.slots[0]);
  out.addresses[0].sin_family = AF_INET;
  out.addresses[0].sin_addr = flow->dst;
  int64_t *rtts = calloc(count, sizeof *rtts);
  if (rtts == NULL) die("calloc");
  long answered = 0, sent = 0;
  const int64_t end = now_ns() + (int64_t)(duration_s * 1e9);
  for (long i = 0; i < count && now_ns() < end; i++) {
    set_sequence(out.slots[0], (uint16_t)i);
    const int64_t sent_at = now_ns();
    send_all(fd, &out, 1);
    sent++;
    for (int64_t deadline = sent_at + PINGPONG_TIMEOUT_NS; now_ns() < deadline;) {
      wait_readable(fd, deadline - now_ns());
      batch_rearm(&in, BATCH);
      int received = recvmmsg(fd, in.headers, BATCH, MSG_DONTWAIT, NULL);
      const int64_t at = now_ns();
      int matched = 0;
      for (int k = 0; k < received; k++) {
        if (reply_sequence(flow, in.slots[k], (int)in.headers[k].msg_len) == (int)(uint16_t)i) matched = 1;
      }
      if (matched) {
        rtts[answered++] = at - sent_at;
        break;
      }
    }
  }
  qsort(rtts, answered, sizeof *rtts, compare_ns);
  double p50 = answered ? rtts[(answered - 1) / 2] / 1e3 : 0;
  double p99 = answered ? rtts[(long)((answered - 1) * 0.99)] / 1e3 : 0;
  double min = answered ? rtts[0] / 1e3 : 0, max = answered ? rtts[answered - 1] / 1e3 : 0;
  printf("{\"size\":%d,\"sent\":%ld,\"received\":%ld,\"p50Us\":%.1f,\"p99Us\":%.1f,\"minUs\":%.1f,\"maxUs\":%.1f}\n",
         flow->size, sent, answered, p50, p99, min, max);
  free(rtts);
  return 0;
}

static struct in_addr address_arg(const char *flag, const char *text) {
  struct in_addr address;
  if (inet_pton(AF_INET, text, &address) != 1) {
    fprintf(stderr, "ipip-bench: %s %s is not an IPv4 address\n", flag, text);
    exit(2);
  }
  return address;
}

static double number_arg(const char *flag, const char *text, double min, double max) {
  char *end;
  double value = strtod(text, &end);
  if (*end != '\0' || value < min || value > max) {
    fprintf(stderr, "ipip-bench: %s %s is not a number in %g..%g\n", flag, text, min, max);
    exit(2);
  }
  return value;
}

int main(int argc, char **argv) {
  if (argc < 2) usage("which mode: reflect, blast or pingpong");
  const char *mode = argv[1];
  struct flow flow = {.size = 84};
  struct blast_options blast_options = {.window = 0, .rate = 0, .duration_s = 0, .count = 0};
  int addresses = 0, lifetime_s = 600;
  for (int i = 2; i < argc; i++) {
    const char *flag = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char *value = argv[++i];
    if (!strcmp(flag, "--src")) flow.src = address_arg(flag, value), addresses |= 1;
    else if (!strcmp(flag, "--dst")) flow.dst = address_arg(flag, value), addresses |= 2;
    else if (!strcmp(flag, "--inner-src")) flow.inner_src = address_arg(flag, value), addresses |= 4;
    else if (!strcmp(flag, "--inner-dst")) flow.inner_dst = address_arg(flag, value), addresses |= 8;
    else if (!strcmp(flag, "--size")) flow.size = (int)number_arg(flag, value, MIN_INNER, MAX_INNER);
    else if (!strcmp(flag, "--window")) blast_options.window = (int)number_arg(flag, value, 1, 1 << 20);
    else if (!strcmp(flag, "--rate")) blast_options.rate = number_arg(flag, value, 1, 1e8);
    else if (!strcmp(flag, "--duration")) blast_options.duration_s = number_arg(flag, value, 0.001, 600);
    else if (!strcmp(flag, "--count")) blast_options.count = (long)number_arg(flag, value, 1, 1e9);
    else if (!strcmp(flag, "--lifetime")) lifetime_s = (int)number_arg(flag, value, 1, 86400);
    else usage("unknown option");
  }
  if (!strcmp(mode, "reflect")) reflect(lifetime_s);
  if (addresses != 15) usage("--src, --dst, --inner-src and --inner-dst are all needed");
  /* Each run has its own ICMP identifier, so a late reply to an earlier run is never counted. */
  flow.ident = (uint16_t)(getpid() ^ now_ns());
  if (!strcmp(mode, "pingpong")) {
    if (blast_options.count == 0 || blast_options.duration_s == 0) usage("pingpong needs --count and --duration");
    return pingpong(&flow, blast_options.count, blast_options.duration_s);
  }
  if (!strcmp(mode, "blast")) {
    if ((blast_options.window > 0) == (blast_options.rate > 0)) usage("blast needs one of --window and --rate");
    if (blast_options.duration_s == 0) usage("blast needs --duration");
    if (blast_options.count == 0) blast_options.count = 100000000;
    return blast(&flow, &blast_options);
  }
  usage("unknown mode");
}
