/*
 * ipip_socket: the node agent's raw IPIP socket with batched I/O. One socket(AF_INET, SOCK_RAW, IPPROTO_IPIP) with
 * IP_HDRINCL, as the raw-socket package opens it, but packets move 64 at a time: recvmmsg fills receive slots and
 * JS gets one call per batch; JS fills send slots and flushes them with one sendmmsg. Every buffer is allocated
 * once, by JS (Buffer.allocUnsafeSlow), and only read and written here: no external buffers, which some Node
 * builds forbid, and no allocation per packet.
 *
 * Only Node-API (NAPI_VERSION 8) and libuv, so one build loads in Node 20, 22 and 24 (see README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

typedef struct {
  napi_env env;
  socket_watch *watch; /* NULL once closed */
  /* Strong while open: the agent may drop every JS reference to the socket, which must not close it. */
  napi_ref self;
  napi_ref on_receive;
  napi_ref on_error;
  napi_ref buffers[6];
  napi_async_context async_context;

  uint32_t batch;
  uint8_t *receive_buffer;
  uint32_t *receive_lengths;
  uint8_t *send_buffer;
  uint32_t *send_lengths;
  uint32_t *send_destinations;
  int32_t *send_errnos;

  struct mmsghdr receive_messages[MAX_BATCH];
  struct iovec receive_vectors[MAX_BATCH];
  struct mmsghdr send_messages[MAX_BATCH];
  struct iovec send_vectors[MAX_BATCH];
  struct sockaddr_in send_addresses[MAX_BATCH];
} ipip_socket;

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
  char text[256];
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
      int received = recvmmsg(state->watch->fd, state->receive_messages, state->batch, MSG_DONTWAIT, NULL);
      if (received < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) report_error(state, receiver, "recvmmsg", errno);
        break;
      }
      for (int i = 0; i < received; i++) state->receive_lengths[i] = state->receive_messages[i].msg_len;
      napi_value count;
      napi_create_uint32(env, (uint32_t)received, &count);
      call_js(state, receiver, state->on_receive, 1, &count);
      if ((uint32_t)received < state->batch) break; /* drained */
    }
  }
  napi_close_handle_scope(env, scope);
}

/*
 * flush(count): sends slots 0..count-1 with sendmmsg and returns how many failed, each failure's errno in its
 * slot of sendErrnos (0: sent). sendmmsg stops at the first message the kernel refuses and that message's error is
 * lost, so the rest is retried: a refused packet then fails alone, is counted and skipped, and one bad destination
 * costs only its own packets, as with one send per packet. A full send buffer (EAGAIN) drops the rest of the batch,
 * as a full device queue would: waiting would stall the event loop, and queueing would grow without bound under a
 * flood.
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
  if (!state->watch) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "flush: the socket is closed");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    state->send_addresses[i].sin_addr.s_addr = htonl(state->send_destinations[i]);
    state->send_vectors[i].iov_len = state->send_lengths[i];
    state->send_errnos[i] = 0;
  }
  uint32_t done = 0, failed = 0;
  while (done < count) {
    int sent = sendmmsg(state->watch->fd, &state->send_messages[done], count - done, MSG_DONTWAIT);
    if (sent > 0) {
      done += (uint32_t)sent;
      continue;
    }
    int error = sent < 0 ? errno : EIO;
    if (error == EINTR) continue;
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
    length = elements * 4;
  }
  if (!ok || length < bytes) {
    snprintf(message, sizeof message, "options.%s must be a %s of at least %zu bytes", name,
             is_buffer ? "Buffer" : type == napi_uint32_array ? "Uint32Array" : "Int32Array", bytes);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  if (napi_create_reference(env, value, 1, keep) != napi_ok) return NULL;
  return data;
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

static bool read_options(napi_env env, napi_value options, ipip_socket *state) {
  if (!required_uint32(env, options, "batch", 1, MAX_BATCH, &state->batch)) return false;
  size_t slots = (size_t)state->batch * SLOT_SIZE, words = (size_t)state->batch * 4;
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

static int open_raw_socket(napi_env env) {
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
  /*
   * The default receive buffer (~208 KB) holds a few milliseconds of traffic: one garbage collection or a busy turn
   * of the event loop and the kernel drops what arrives. Ask for more than any host allows; the kernel caps the
   * request at net.core.rmem_max without failing, so this is best effort by design.
   */
  int receive_buffer = RECEIVE_BUFFER_REQUEST;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  return fd;
}

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
  if (!read_options(env, options, state)) goto fail;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_create_string_utf8(env, "IpipSocket", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, self, resource_name, &state->async_context) != napi_ok) {
    throw_last_error(env, "IpipSocket setup");
    goto fail;
  }
  prepare_messages(state);
  watch->fd = open_raw_socket(env);
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

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"flush", NULL, flush, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, close_method, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value socket_class, max_batch, slot_size;
  CHECK(env, napi_define_class(env, "IpipSocket", NAPI_AUTO_LENGTH, construct, NULL,
                               sizeof methods / sizeof methods[0], methods, &socket_class));
  CHECK(env, napi_set_named_property(env, exports, "IpipSocket", socket_class));
  CHECK(env, napi_create_uint32(env, MAX_BATCH, &max_batch));
  CHECK(env, napi_set_named_property(env, exports, "maxBatch", max_batch));
  CHECK(env, napi_create_uint32(env, SLOT_SIZE, &slot_size));
  CHECK(env, napi_set_named_property(env, exports, "slotSize", slot_size));
  return exports;
}
