/*
 * ipip_socket: the node agent's raw IPIP socket with batched I/O. One socket(AF_INET, SOCK_RAW, IPPROTO_IPIP) with
 * IP_HDRINCL, as the raw-socket package opens it, but packets move 64 at a time: recvmmsg fills receive slots and
 * JS gets one call per batch; JS fills send slots and flushes them with one sendmmsg. Every buffer is allocated
 * once, by JS (Buffer.allocUnsafeSlow), and only read and written here: no external buffers, which some Node
 * builds forbid, and no allocation per packet.
 *
 * The same object drives a TUN device instead (options.tun: the kernel-backed node, where the agent is tunl0's
 * driver) or captures one interface's IPv4 traffic (options.packet); only the system calls differ, so the batching,
 * the callbacks and the failure accounting are shared. bindInNetns binds a socket inside a pod's network namespace
 * for Node's own servers to listen on.
 *
 * Only Node-API (NAPI_VERSION 8) and libuv, so one build loads in Node 20, 22 and 24 (see README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

/* The most packets one recvmmsg or sendmmsg moves; JS picks its batch size up to this. */
#define MAX_BATCH 64
/*
 * Every slot holds the largest IPv4 datagram: the kernel reassembles fragmented outer packets before a raw socket
 * sees them, so a peer can hand us up to 65535 bytes at once.
 */
#define SLOT_SIZE 65535
/*
 * Batches received per readiness event before the loop gets a turn: the API and the pods' timers must not starve
 * under a flood, and the poll is level-triggered, so what is left wakes us again on the next iteration.
 */
#define BATCHES_PER_WAKE 4

/*
 * Readiness comes from libuv's uv_poll on the event loop's own thread, not from a receive thread: a batch reaches
 * JS with no thread hand-off (a thread would need a threadsafe-function wake-up per batch, and then must wait for
 * JS to finish with the shared slots before it may receive into them again). libuv 1.x keeps its ABI stable, and
 * Node 20, 22 and 24 all export libuv 1.x, so using it keeps the addon loadable in all three.
 *
 * The watch is allocated apart from the socket's state: uv_close completes on a later loop iteration, by which time
 * the JS object (and with it the state) may already be finalized.
 */
typedef struct {
  uv_poll_t poll;
  int fd;
  bool closing;
  napi_async_cleanup_hook_handle teardown_hook;
} socket_watch;

typedef struct ipip_socket ipip_socket;

/*
 * What a mode changes: how the descriptor is opened and which system calls move the packets. Everything around
 * them (the batch and wake-up rules, the callbacks, sendErrnos) is the same code for every mode.
 */
typedef struct {
  /* Returns the descriptor, or -1 after throwing. `device` is the interface the mode names, "" for raw IPIP. */
  int (*open)(napi_env env, const char *device);
  /* Named in onError when `receive` fails. */
  const char *receive_call;
  /*
   * Receives up to one batch: *taken is how many packets the kernel handed over (fewer than the batch means the
   * queue is drained), *delivered how many of them are in slots 0 to *delivered-1 for JS. Returns 0 or an errno; an
   * error met after the first packet is left for the next call, as recvmmsg leaves it.
   */
  int (*receive)(ipip_socket *state, int fd, uint32_t *taken, uint32_t *delivered);
  /*
   * Sends slots first to first+count-1 in order, stopping at the first packet the kernel refuses, and returns how
   * many went. When it stops early, *error is the refused packet's errno, or 0 when the kernel did not say
   * (sendmmsg loses it) and the packet is to be tried again alone. NULL: the mode only receives.
   */
  uint32_t (*send)(ipip_socket *state, int fd, uint32_t first, uint32_t count, int *error);
} transport;

struct ipip_socket {
  napi_env env;
  const transport *transport;
  socket_watch *watch; /* NULL once closed */
  /* Strong while open: the agent may drop every JS reference to the socket, which must not close it. */
  napi_ref self;
  napi_ref on_receive;
  napi_ref on_error;
  napi_ref buffers[7];
  napi_async_context async_context;

  uint32_t batch;
  uint8_t *receive_buffer;
  uint32_t *receive_lengths;
  uint8_t *receive_directions; /* optional, and only a capture writes it */
  uint8_t *send_buffer;
  uint32_t *send_lengths;
  uint32_t *send_destinations;
  int32_t *send_errnos;

  struct mmsghdr receive_messages[MAX_BATCH];
  struct iovec receive_vectors[MAX_BATCH];
  struct sockaddr_ll receive_links[MAX_BATCH]; /* a capture's: which protocol and direction each packet had */
  struct mmsghdr send_messages[MAX_BATCH];
  struct iovec send_vectors[MAX_BATCH];
  struct sockaddr_in send_addresses[MAX_BATCH];
};

/* Returns from the calling function with NULL after throwing, when a Node-API call fails. */
#define CHECK(env, call)                                          \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      throw_last_error(env, #call);                               \
      return NULL;                                                \
    }                                                             \
  } while (0)

static void throw_last_error(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char message[256];
  snprintf(message, sizeof message, "%s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown Node-API error");
  napi_throw_error(env, NULL, message);
}

/* An Error with the errno and the system call, as Node's own system errors carry them. */
static void throw_errno(napi_env env, const char *syscall, int error) {
  char text[PATH_MAX + 128];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(error));
  napi_value message, exception, code, name;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message) != napi_ok) return;
  if (napi_create_error(env, NULL, message, &exception) != napi_ok) return;
  napi_create_int32(env, error, &code);
  napi_set_named_property(env, exception, "errno", code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, exception, "syscall", name);
  napi_throw(env, exception);
}

static void on_watch_closed(uv_handle_t *handle) {
  socket_watch *watch = (socket_watch *)handle;
  if (watch->teardown_hook) napi_remove_async_cleanup_hook(watch->teardown_hook);
  free(watch);
}

static void close_watch(socket_watch *watch) {
  if (watch->closing) return;
  watch->closing = true;
  uv_poll_stop(&watch->poll);
  close(watch->fd);
  uv_close((uv_handle_t *)&watch->poll, on_watch_closed);
}

/* The environment is going away (process exit, a worker ending) with the socket still open. */
static void on_teardown(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  close_watch(data);
}

static void release_reference(napi_env env, napi_ref *reference) {
  if (*reference) napi_delete_reference(env, *reference);
  *reference = NULL;
}

/* Lets the garbage collector have the callbacks, the buffers and, unless JS still holds it, the socket object. */
static void release_references(ipip_socket *state) {
  napi_env env = state->env;
  release_reference(env, &state->on_receive);
  release_reference(env, &state->on_error);
  for (size_t i = 0; i < sizeof state->buffers / sizeof state->buffers[0]; i++) {
    release_reference(env, &state->buffers[i]);
  }
  if (state->async_context) napi_async_destroy(env, state->async_context);
  state->async_context = NULL;
  release_reference(env, &state->self);
}

static void close_socket(ipip_socket *state) {
  if (!state->watch) return;
  close_watch(state->watch);
  state->watch = NULL;
  release_references(state);
}

/*
 * Calls a JS callback from the event loop. napi_make_callback (not napi_call_function) so that Node runs the
 * microtask queue when it returns: the send flush that the batch's packets queued goes out right then.
 */
static void call_js(ipip_socket *state, napi_value receiver, napi_ref callback, size_t argc, napi_value *argv) {
  napi_env env = state->env;
  napi_value function;
  if (napi_get_reference_value(env, callback, &function) != napi_ok || !function) return;
  if (napi_make_callback(env, state->async_context, receiver, function, argc, argv, NULL) == napi_pending_exception) {
    /* What an event listener that throws does: an uncaught exception, which the process handles or dies of. */
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

static void report_error(ipip_socket *state, napi_value receiver, const char *syscall, int error) {
  napi_value argv[2];
  napi_create_int32(state->env, error, &argv[0]);
  napi_create_string_utf8(state->env, syscall, NAPI_AUTO_LENGTH, &argv[1]);
  call_js(state, receiver, state->on_error, 2, argv);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  ipip_socket *state = poll->data;
  napi_env env = state->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  /* A local handle to the JS object keeps the state alive even if a callback closes the socket. */
  napi_value receiver;
  napi_get_reference_value(env, state->self, &receiver);
  if (status < 0) {
    report_error(state, receiver, "poll", -status);
  } else {
    for (int round = 0; round < BATCHES_PER_WAKE && state->watch; round++) {
      uint32_t taken = 0, delivered = 0;
      int error = state->transport->receive(state, state->watch->fd, &taken, &delivered);
      if (error == EINTR) continue;
      if (error) {
        if (error != EAGAIN && error != EWOULDBLOCK) {
          report_error(state, receiver, state->transport->receive_call, error);
        }
        break;
      }
      /* A capture may have skipped every packet it took (none was IPv4): JS has nothing to see. */
      if (delivered > 0) {
        napi_value count;
        napi_create_uint32(env, delivered, &count);
        call_js(state, receiver, state->on_receive, 1, &count);
      }
      if (taken < state->batch) break; /* drained */
    }
  }
  napi_close_handle_scope(env, scope);
}

/* The raw socket's batch: one recvmmsg. */
static int receive_datagrams(ipip_socket *state, int fd, uint32_t *taken, uint32_t *delivered) {
  int received = recvmmsg(fd, state->receive_messages, state->batch, MSG_DONTWAIT, NULL);
  if (received < 0) return errno;
  for (int i = 0; i < received; i++) state->receive_lengths[i] = state->receive_messages[i].msg_len;
  *taken = *delivered = (uint32_t)received;
  return 0;
}

/* A TUN device has no recvmmsg: one read per packet, until the queue is empty or the batch full. */
static int receive_reads(ipip_socket *state, int fd, uint32_t *taken, uint32_t *delivered) {
  uint32_t count = 0;
  while (count < state->batch) {
    ssize_t length = read(fd, state->receive_vectors[count].iov_base, SLOT_SIZE);
    if (length < 0) {
      if (count == 0) return errno;
      break;
    }
    state->receive_lengths[count++] = (uint32_t)length;
  }
  *taken = *delivered = count;
  return 0;
}

/*
 * A capture's batch: one recvmmsg, of which only IPv4 reaches JS (an interface also carries ARP and IPv6); the
 * packets kept move down into the slots the others took, so JS still reads slots 0 to count-1.
 */
static int receive_captured(ipip_socket *state, int fd, uint32_t *taken, uint32_t *delivered) {
  /* The kernel shortens each name length to the address it wrote; the next call must offer the whole of it again. */
  for (uint32_t i = 0; i < state->batch; i++) {
    state->receive_messages[i].msg_hdr.msg_namelen = sizeof state->receive_links[i];
  }
  int received = recvmmsg(fd, state->receive_messages, state->batch, MSG_DONTWAIT, NULL);
  if (received < 0) return errno;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < (uint32_t)received; i++) {
    const struct sockaddr_ll *link = &state->receive_links[i];
    if (link->sll_protocol != htons(ETH_P_IP)) continue;
    uint32_t length = state->receive_messages[i].msg_len;
    if (kept != i) memcpy(state->receive_vectors[kept].iov_base, state->receive_vectors[i].iov_base, length);
    state->receive_lengths[kept] = length;
    if (state->receive_directions) state->receive_directions[kept] = link->sll_pkttype == PACKET_OUTGOING;
    kept++;
  }
  *taken = (uint32_t)received;
  *delivered = kept;
  return 0;
}

static uint32_t send_datagrams(ipip_socket *state, int fd, uint32_t first, uint32_t count, int *error) {
  for (uint32_t i = first; i < first + count; i++) {
    state->send_addresses[i].sin_addr.s_addr = htonl(state->send_destinations[i]);
  }
  int sent = sendmmsg(fd, &state->send_messages[first], count, MSG_DONTWAIT);
  if (sent < 0) {
    *error = errno;
    return 0;
  }
  if (sent == 0) *error = EIO;
  return (uint32_t)sent;
}

/* A TUN device has no sendmmsg: one write per packet, which the kernel takes whole or refuses. */
static uint32_t send_writes(ipip_socket *state, int fd, uint32_t first, uint32_t count, int *error) {
  for (uint32_t i = 0; i < count; i++) {
    const struct iovec *packet = &state->send_vectors[first + i];
    if (write(fd, packet->iov_base, packet->iov_len) < 0) {
      *error = errno;
      return i;
    }
  }
  return count;
}

/*
 * flush(count): sends slots 0..count-1 (one sendmmsg, or a write each on a TUN device) and returns how many
 * failed, each failure's errno in its slot of sendErrnos (0: sent). sendmmsg stops at the first message the kernel
 * refuses and that message's error is lost, so the rest is retried: a refused packet then fails alone, is counted
 * and skipped, and one bad destination costs only its own packets, as with one send per packet. A full send
 * buffer (EAGAIN) drops the rest of the batch, as a full device queue would: waiting would stall the event loop,
 * and queueing would grow without bound under a flood.
 */
static napi_value flush(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  ipip_socket *state;
  CHECK(env, napi_unwrap(env, self, (void **)&state));
  uint32_t count = 0;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &count) != napi_ok || count > state->batch) {
    napi_throw_range_error(env, NULL, "flush(count): count must be an integer from 0 to the batch size");
    return NULL;
  }
  if (!state->transport->send) {
    napi_throw_error(env, "ERR_CAPTURE_ONLY",
                     "flush: capture-only (a socket opened with options.packet only receives)");
    return NULL;
  }
  if (!state->watch) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "flush: the socket is closed");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    state->send_vectors[i].iov_len = state->send_lengths[i];
    state->send_errnos[i] = 0;
  }
  uint32_t done = 0, failed = 0;
  while (done < count) {
    int error = 0;
    done += state->transport->send(state, state->watch->fd, done, count - done, &error);
    if (done == count || error == 0 || error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) {
      for (; done < count; done++, failed++) state->send_errnos[done] = error;
      break;
    }
    state->send_errnos[done++] = error;
    failed++;
  }
  napi_value result;
  CHECK(env, napi_create_uint32(env, failed, &result));
  return result;
}

static napi_value close_method(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  ipip_socket *state;
  CHECK(env, napi_unwrap(env, self, (void **)&state));
  close_socket(state);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  /* Only reachable once closed (the socket holds itself strongly while open), or at environment teardown. */
  free(data);
}

/* A property of the options object that must be a Buffer (or, with `type`, that typed array), of at least `bytes`. */
static void *required_memory(napi_env env, napi_value options, const char *name, napi_typedarray_type type,
                             bool is_buffer, size_t bytes, napi_ref *keep) {
  napi_value value;
  char message[160];
  if (napi_get_named_property(env, options, name, &value) != napi_ok) return NULL;
  void *data = NULL;
  size_t length = 0;
  bool ok = false;
  if (is_buffer) {
    bool buffer = false;
    ok = napi_is_buffer(env, value, &buffer) == napi_ok && buffer &&
         napi_get_buffer_info(env, value, &data, &length) == napi_ok;
  } else {
    bool typed = false;
    napi_typedarray_type actual;
    size_t elements;
    ok = napi_is_typedarray(env, value, &typed) == napi_ok && typed &&
         napi_get_typedarray_info(env, value, &actual, &elements, &data, NULL, NULL) == napi_ok && actual == type;
    length = type == napi_uint8_array ? elements : elements * 4;
  }
  if (!ok || length < bytes) {
    const char *kind = is_buffer                   ? "Buffer"
                       : type == napi_uint8_array  ? "Uint8Array"
                       : type == napi_uint32_array ? "Uint32Array"
                                                   : "Int32Array";
    snprintf(message, sizeof message, "options.%s must be a %s of at least %zu bytes", name, kind, bytes);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  if (napi_create_reference(env, value, 1, keep) != napi_ok) return NULL;
  return data;
}

/* Whether the options object gives `name` (anything but undefined); false also when reading it threw. */
static bool given(napi_env env, napi_value options, const char *name, bool *is_given) {
  napi_value value;
  napi_valuetype type;
  if (napi_get_named_property(env, options, name, &value) != napi_ok || napi_typeof(env, value, &type) != napi_ok) {
    throw_last_error(env, name);
    return false;
  }
  *is_given = type != napi_undefined;
  return true;
}

/* A string argument or option of 1 to size-1 bytes, copied into `out`; false, without throwing, if it is not one. */
static bool short_string(napi_env env, napi_value value, char *out, size_t size) {
  napi_valuetype type;
  size_t length = 0;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_string &&
         napi_get_value_string_utf8(env, value, NULL, 0, &length) == napi_ok && length > 0 && length < size &&
         napi_get_value_string_utf8(env, value, out, size, &length) == napi_ok;
}

/* An interface name, when the option is given: the kernel's names are 1 to IFNAMSIZ-1 bytes. */
static bool optional_interface_name(napi_env env, napi_value options, const char *name, char device[IFNAMSIZ],
                                    bool *is_given) {
  if (!given(env, options, name, is_given)) return false;
  napi_value value;
  if (!*is_given || (napi_get_named_property(env, options, name, &value) == napi_ok &&
                     short_string(env, value, device, IFNAMSIZ))) {
    return true;
  }
  char message[128];
  snprintf(message, sizeof message, "options.%s must be an interface name of 1 to %d bytes", name, IFNAMSIZ - 1);
  napi_throw_type_error(env, NULL, message);
  return false;
}

static bool required_uint32(napi_env env, napi_value options, const char *name, uint32_t min, uint32_t max,
                            uint32_t *out) {
  napi_value value;
  if (napi_get_named_property(env, options, name, &value) == napi_ok &&
      napi_get_value_uint32(env, value, out) == napi_ok && *out >= min && *out <= max) {
    return true;
  }
  char message[128];
  snprintf(message, sizeof message, "options.%s must be an integer from %u to %u", name, min, max);
  napi_throw_range_error(env, NULL, message);
  return false;
}

static bool required_function(napi_env env, napi_value options, const char *name, napi_ref *keep) {
  napi_value value;
  napi_valuetype type = napi_undefined;
  if (napi_get_named_property(env, options, name, &value) == napi_ok && napi_typeof(env, value, &type) == napi_ok &&
      type == napi_function) {
    return napi_create_reference(env, value, 1, keep) == napi_ok;
  }
  char message[96];
  snprintf(message, sizeof message, "options.%s must be a function", name);
  napi_throw_type_error(env, NULL, message);
  return false;
}

static const transport raw_ipip, tun_device, packet_capture;

/* Which mode the options ask for, and the interface it names (device, IFNAMSIZ bytes). */
static bool read_mode(napi_env env, napi_value options, ipip_socket *state, char *device) {
  bool tun = false, packet = false;
  if (!optional_interface_name(env, options, "tun", device, &tun) ||
      !optional_interface_name(env, options, "packet", device, &packet)) {
    return false;
  }
  if (tun && packet) {
    napi_throw_type_error(env, NULL, "options.tun and options.packet exclude each other");
    return false;
  }
  state->transport = tun ? &tun_device : packet ? &packet_capture : &raw_ipip;
  return true;
}

static bool read_options(napi_env env, napi_value options, ipip_socket *state, char *device) {
  if (!read_mode(env, options, state, device)) return false;
  if (!required_uint32(env, options, "batch", 1, MAX_BATCH, &state->batch)) return false;
  size_t slots = (size_t)state->batch * SLOT_SIZE, words = (size_t)state->batch * 4;
  bool directions;
  if (!given(env, options, "receiveDirections", &directions)) return false;
  if (directions) {
    state->receive_directions = required_memory(env, options, "receiveDirections", napi_uint8_array, false,
                                                state->batch, &state->buffers[6]);
    if (!state->receive_directions) return false;
  }
  return (state->receive_buffer = required_memory(env, options, "receiveBuffer", 0, true, slots, &state->buffers[0])) &&
         (state->receive_lengths = required_memory(env, options, "receiveLengths", napi_uint32_array, false, words,
                                                   &state->buffers[1])) &&
         (state->send_buffer = required_memory(env, options, "sendBuffer", 0, true, slots, &state->buffers[2])) &&
         (state->send_lengths = required_memory(env, options, "sendLengths", napi_uint32_array, false, words,
                                                &state->buffers[3])) &&
         (state->send_destinations = required_memory(env, options, "sendDestinations", napi_uint32_array, false,
                                                     words, &state->buffers[4])) &&
         (state->send_errnos = required_memory(env, options, "sendErrnos", napi_int32_array, false, words,
                                               &state->buffers[5])) &&
         required_function(env, options, "onReceive", &state->on_receive) &&
         required_function(env, options, "onError", &state->on_error);
}

/* The message headers point at the slots for good: only lengths and destinations change per batch. */
static void prepare_messages(ipip_socket *state) {
  for (uint32_t i = 0; i < state->batch; i++) {
    state->receive_vectors[i] = (struct iovec){state->receive_buffer + (size_t)i * SLOT_SIZE, SLOT_SIZE};
    state->receive_messages[i].msg_hdr = (struct msghdr){.msg_iov = &state->receive_vectors[i], .msg_iovlen = 1};
    /* Only a capture wants the sender's address: the link-layer one says which protocol and which direction. */
    if (state->transport == &packet_capture) state->receive_messages[i].msg_hdr.msg_name = &state->receive_links[i];
    state->send_vectors[i] = (struct iovec){state->send_buffer + (size_t)i * SLOT_SIZE, 0};
    state->send_addresses[i] = (struct sockaddr_in){.sin_family = AF_INET};
    state->send_messages[i].msg_hdr = (struct msghdr){
        .msg_name = &state->send_addresses[i],
        .msg_namelen = sizeof state->send_addresses[i],
        .msg_iov = &state->send_vectors[i],
        .msg_iovlen = 1,
    };
  }
}

#define RECEIVE_BUFFER_REQUEST (64 * 1024 * 1024)

/*
 * The default receive buffer (~208 KB) holds a few milliseconds of traffic: one garbage collection or a busy turn
 * of the event loop and the kernel drops what arrives. Ask for more than any host allows; the kernel caps the
 * request at net.core.rmem_max without failing, so this is best effort by design.
 */
static void request_large_receive_queue(int fd) {
  int receive_buffer = RECEIVE_BUFFER_REQUEST;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
}

static int open_raw_socket(napi_env env, const char *device) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPIP);
  if (fd < 0) {
    throw_errno(env, "socket", errno);
    return -1;
  }
  /* Our outer header goes out as the dataplane built it; the kernel only fills in the checksum and total length. */
  int on = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &on, sizeof on) < 0) {
    int error = errno;
    close(fd);
    throw_errno(env, "setsockopt(IP_HDRINCL)", error);
    return -1;
  }
  request_large_receive_queue(fd);
  return fd;
}

/*
 * Attaches to the TUN device of that name, creating it if absent. Not persistent: the device goes when the
 * descriptor closes, so an agent that dies leaves no tunl0 behind routing into nothing. IFF_NO_PI: every read and
 * write is one bare IP packet, with no header of the driver's own.
 */
static int open_tun(napi_env env, const char *device) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, "open(/dev/net/tun)", errno);
    return -1;
  }
  struct ifreq request = {.ifr_flags = IFF_TUN | IFF_NO_PI};
  memcpy(request.ifr_name, device, strlen(device) + 1);
  if (ioctl(fd, TUNSETIFF, &request) < 0) {
    int error = errno;
    close(fd);
    throw_errno(env, "ioctl(TUNSETIFF)", error);
    return -1;
  }
  return fd;
}

/*
 * A link-layer capture of one interface, every protocol, both directions, link-layer header already stripped
 * (SOCK_DGRAM). The socket is made with protocol 0, which receives nothing, and bind() sets ETH_P_ALL together
 * with the interface: made with ETH_P_ALL it would take every interface's packets until bound.
 */
static int open_capture(napi_env env, const char *device) {
  char call[IFNAMSIZ + 32];
  unsigned index = if_nametoindex(device);
  if (index == 0) {
    snprintf(call, sizeof call, "if_nametoindex(%s)", device);
    throw_errno(env, call, errno);
    return -1;
  }
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket(AF_PACKET)", errno);
    return -1;
  }
  struct sockaddr_ll link = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)index};
  if (bind(fd, (struct sockaddr *)&link, sizeof link) < 0) {
    int error = errno;
    close(fd);
    snprintf(call, sizeof call, "bind(%s)", device);
    throw_errno(env, call, error);
    return -1;
  }
  request_large_receive_queue(fd);
  return fd;
}

static const transport raw_ipip = {open_raw_socket, "recvmmsg", receive_datagrams, send_datagrams};
static const transport tun_device = {open_tun, "read", receive_reads, send_writes};
static const transport packet_capture = {open_capture, "recvmmsg", receive_captured, NULL};

/* new IpipSocket(options): opens the socket and starts receiving; see native/README.md for the options. */
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value options, self;
  CHECK(env, napi_get_cb_info(env, info, &argc, &options, &self, NULL));
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, options, &type) != napi_ok || type != napi_object) {
    napi_throw_type_error(env, NULL, "new IpipSocket(options): options must be an object");
    return NULL;
  }
  ipip_socket *state = calloc(1, sizeof *state);
  socket_watch *watch = calloc(1, sizeof *watch);
  if (!state || !watch) {
    napi_throw_error(env, NULL, "IpipSocket: out of memory");
    goto fail;
  }
  state->env = env;
  watch->fd = -1;
  uv_loop_t *loop;
  napi_value resource_name;
  char device[IFNAMSIZ] = "";
  if (!read_options(env, options, state, device)) goto fail;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_create_string_utf8(env, "IpipSocket", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, self, resource_name, &state->async_context) != napi_ok) {
    throw_last_error(env, "IpipSocket setup");
    goto fail;
  }
  prepare_messages(state);
  watch->fd = state->transport->open(env, device);
  if (watch->fd < 0) goto fail;
  int status = uv_poll_init(loop, &watch->poll, watch->fd);
  if (status < 0) {
    throw_errno(env, "uv_poll_init", -status);
    goto fail;
  }
  watch->poll.data = state;
  state->watch = watch;
  if (napi_wrap(env, self, state, finalize, NULL, NULL) != napi_ok) {
    throw_last_error(env, "napi_wrap");
    close_socket(state);
    free(state);
    return NULL;
  }
  /* From here the object owns the state: its finalizer frees it. */
  if (napi_create_reference(env, self, 1, &state->self) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_teardown, watch, &watch->teardown_hook) != napi_ok) {
    throw_last_error(env, "IpipSocket setup");
    close_socket(state);
    return NULL;
  }
  status = uv_poll_start(&watch->poll, UV_READABLE, on_readable);
  if (status < 0) {
    close_socket(state);
    throw_errno(env, "uv_poll_start", -status);
  }
  return NULL;

fail:
  /* Not yet a libuv handle, so plain frees do. */
  if (watch && watch->fd >= 0) close(watch->fd);
  free(watch);
  if (state) release_references(state);
  free(state);
  return NULL;
}

/* A socket of that type bound to 0.0.0.0:port in the calling thread's network namespace, or -1 and why. */
static int bound_socket(int type, uint16_t port, const char **failed_call, int *error) {
  int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failed_call = "socket";
    *error = errno;
    return -1;
  }
  /* What libuv sets before it binds a TCP socket: a restarted server may bind while old connections linger. */
  int on = 1;
  if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
    *failed_call = "setsockopt(SO_REUSEADDR)";
    *error = errno;
    close(fd);
    return -1;
  }
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    *failed_call = "bind";
    *error = errno;
    close(fd);
    return -1;
  }
  return fd;
}

/*
 * bindInNetns(netnsPath, 'tcp' | 'udp', port): a socket bound to 0.0.0.0:port inside that network namespace, as a
 * descriptor for net.Server#listen({ fd }) or dgram's bind({ fd }). A socket belongs to the namespace it was made
 * in, whatever thread later uses it, so the main thread visits the pod's namespace just long enough to make and
 * bind it; Node listens on it afterwards. Until Node takes it, the descriptor is the caller's to close.
 */
static napi_value bind_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX], protocol[4];
  uint32_t port = 0;
  if (argc < 3 || !short_string(env, argv[0], path, sizeof path)) {
    napi_throw_type_error(env, NULL, "bindInNetns(netnsPath, protocol, port): netnsPath must be a path");
    return NULL;
  }
  if (!short_string(env, argv[1], protocol, sizeof protocol) ||
      (strcmp(protocol, "tcp") != 0 && strcmp(protocol, "udp") != 0)) {
    napi_throw_type_error(env, NULL, "bindInNetns(netnsPath, protocol, port): protocol must be 'tcp' or 'udp'");
    return NULL;
  }
  if (napi_get_value_uint32(env, argv[2], &port) != napi_ok || port > 65535) {
    napi_throw_range_error(env, NULL,
                           "bindInNetns(netnsPath, protocol, port): port must be an integer from 0 to 65535");
    return NULL;
  }
  /* The thread's own namespace, not the process's: the way back must be where this thread came from. */
  int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) {
    throw_errno(env, "open(/proc/thread-self/ns/net)", errno);
    return NULL;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int error = errno;
    close(original);
    char call[PATH_MAX + 8];
    snprintf(call, sizeof call, "open(%s)", path);
    throw_errno(env, call, error);
    return NULL;
  }
  const char *failed_call = "setns";
  int error = 0, fd = -1;
  if (setns(target, CLONE_NEWNET) < 0) {
    error = errno;
  } else {
    fd = bound_socket(strcmp(protocol, "tcp") == 0 ? SOCK_STREAM : SOCK_DGRAM, (uint16_t)port, &failed_call, &error);
    /*
     * Stuck in the pod's namespace, the main thread would make every later socket of the agent there, and the
     * agent would go on serving from the wrong network without knowing it: better to die loudly at once.
     */
    if (setns(original, CLONE_NEWNET) < 0) {
      fprintf(stderr,
              "ipip_socket: bindInNetns(%s): cannot return to the thread's own network namespace (setns: %s)\n",
              path, strerror(errno));
      abort();
    }
  }
  close(target);
  close(original);
  if (fd < 0) {
    throw_errno(env, failed_call, error);
    return NULL;
  }
  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    throw_last_error(env, "napi_create_int32");
    return NULL;
  }
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"flush", NULL, flush, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, close_method, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value socket_class, max_batch, slot_size, bind_function;
  CHECK(env, napi_define_class(env, "IpipSocket", NAPI_AUTO_LENGTH, construct, NULL,
                               sizeof methods / sizeof methods[0], methods, &socket_class));
  CHECK(env, napi_set_named_property(env, exports, "IpipSocket", socket_class));
  CHECK(env, napi_create_uint32(env, MAX_BATCH, &max_batch));
  CHECK(env, napi_set_named_property(env, exports, "maxBatch", max_batch));
  CHECK(env, napi_create_uint32(env, SLOT_SIZE, &slot_size));
  CHECK(env, napi_set_named_property(env, exports, "slotSize", slot_size));
  CHECK(env, napi_create_function(env, "bindInNetns", NAPI_AUTO_LENGTH, bind_in_netns, NULL, &bind_function));
  CHECK(env, napi_set_named_property(env, exports, "bindInNetns", bind_function));
  return exports;
}
