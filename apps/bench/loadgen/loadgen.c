/*
 * loadgen — a single-threaded, epoll-based WebSocket load generator for the
 * Switchboard benchmark (apps/bench). Plain C11 + libc, Linux only.
 *
 *   cc -O2 -o loadgen loadgen.c
 *
 *   loadgen echo      --port P [--path /echo] [--conns 100] [--inflight 16] [--size 32]
 *                     [--seconds 10] [--warmup 2]
 *   loadgen broadcast --port P [--path /broadcast] [--subs 1000] [--pubs 1] [--size 64]
 *                     [--rate 0] [--window 32] [--seconds 10] [--warmup 2] [--port2 P2]
 *   loadgen handshake --port P [--path /echo] [--seconds 10] [--warmup 1] [--concurrency 50]
 *                     [--close frame|fin]
 *   loadgen idle      --port P [--path /echo] [--conns 10000] [--hold 5] [--messages 0]
 *   (echo and broadcast: --frames binary (default) or text: JSON in text frames)
 *
 * Always connects to 127.0.0.1. With --port2, every second connection (odd
 * index: the first publisher stays on --port) goes to that port instead, for
 * two servers that share one broadcast through a backplane. Prints ONE line of JSON on stdout; progress
 * lines on stderr ("phase measure", "phase end"; idle: "ready <n>" once all are
 * open, "phase closing" when the hold ends) so that a runner can sample the
 * server exactly over the measured window.
 *
 * handshake: each of --concurrency slots repeats connect, upgrade and close;
 * --close frame (default) sends a close frame 1000 after the 101 and waits for
 * the server's close frame and FIN before closing the socket; --close fin just
 * closes the socket after the 101. idle closes every connection with a close
 * frame 1000 after the hold; with --messages K every connection first exchanges
 * K echo messages (one at a time, all connections in step) before "ready". The
 * payload of echo/broadcast messages (binary,
 * --size >= 24 bytes) carries a send timestamp, a sequence number and, for
 * broadcast, the publisher's id; lost, reordered and malformed messages are
 * counted in the JSON. Exit status 0 on a
 * completed run (errors are counted in the JSON), 1 on a failed setup (the
 * message is on stderr and in the JSON "error" field), 2 on bad usage.
 *
 * The client side of RFC 6455 that matters here: the HTTP upgrade (a fixed
 * Sec-WebSocket-Key; the 101 status and the matching Sec-WebSocket-Accept are
 * checked), masked client frames (a fixed, non-zero mask key, applied to every
 * payload byte), server frames with 7/16/64-bit lengths, split across reads or
 * several per read, fragmented messages, pings answered with pongs, and the
 * close handshake.
 *
 * Every loop is bounded in time: the measured phases by --warmup/--seconds,
 * the connection setup by --setup-timeout (default 30 s), the drain after a
 * run by 3 s, a handshake cycle by 5 s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MODE_ECHO, MODE_BROADCAST, MODE_HANDSHAKE, MODE_IDLE };
enum { ST_FREE, ST_CONNECTING, ST_UPGRADING, ST_OPEN, ST_CLOSING, ST_CLOSED };
enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

#define RBUF_SIZE (1u << 18)
#define MAX_EVENTS 1024
#define MAX_PUBS 64
#define MAX_SIZE 65536
#define MAX_OUT (64u << 20)
#define HEAD_KEEP 36 /* payload bytes kept of a fragmented message: timestamp, sequence, publisher */
#define NS 1000000000LL

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};
static const char *WS_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
static const char *WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; /* RFC 6455 section 1.3 */

typedef struct conn {
  int fd, idx, state;
  uint32_t events; /* registered epoll events, 0 = not registered */
  uint8_t *pend;   /* bytes of an incomplete frame (or HTTP response) from the last read */
  uint32_t plen, pcap;
  uint8_t *out; /* bytes not yet accepted by the socket */
  uint32_t olen, ooff, ocap;
  uint8_t frag_active, frag_op, sent_close, got_close;
  uint32_t frag_hlen;
  uint64_t frag_len;
  uint8_t frag_head[HEAD_KEEP];
  uint64_t next_seq, expect_seq; /* echo: per connection; broadcast publisher: next_seq */
  uint64_t own_seen;             /* broadcast publisher: own messages received back */
  uint64_t *expect;              /* broadcast: next expected sequence, per publisher */
  int inflight;
  int64_t t_start; /* when the connect started */
  int64_t t_open;  /* when the 101 arrived */
} conn_t;

static struct {
  int mode, port, port2, conns, inflight, size, subs, pubs, window, concurrency, batch, close_fin, text, messages;
  double seconds, warmup, rate, hold, setup_timeout;
  const char *path;
} cfg;

typedef struct {
  uint64_t b[3840];
  uint64_t n, max;
} hist_t;

static struct {
  int measuring, stopping;
  uint64_t msgs;        /* echo round trips / broadcast deliveries, measured */
  uint64_t published;   /* broadcast publishes, measured */
  uint64_t published_all;
  uint64_t handshakes;  /* 101 responses, measured */
  uint64_t cycles;      /* complete open+upgrade+close cycles, measured */
  uint64_t lost, reordered, bad_payload, proto_errors, conn_errors, server_closes, timeouts;
  uint64_t rate_capped;
  uint64_t pings; /* pings from the server (answered with pongs) */
  int first_close_code;
  char first_error[200];
} st;

static hist_t lat, hs_lat, close_lat;
static int ep = -1;
static int64_t g_now;
static uint8_t *rbuf;
static conn_t *conns;
static int nconns;
static struct sockaddr_in srv, srv2;
static char upgrade_req[512];
static size_t upgrade_len;
static uint8_t payload_tpl[MAX_SIZE];
static uint64_t pub_sent[MAX_PUBS];
static int *restart_stack;
static int restart_n;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void json_escape(char *dst, size_t cap, const char *src) {
  size_t j = 0;
  for (size_t i = 0; src[i] && j + 2 < cap; i++) {
    char ch = src[i];
    if (ch == '"' || ch == '\\') dst[j++] = '\\';
    dst[j++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
  }
  dst[j] = 0;
}

static const char *mode_name(void) {
  switch (cfg.mode) {
    case MODE_ECHO: return "echo";
    case MODE_BROADCAST: return "broadcast";
    case MODE_HANDSHAKE: return "handshake";
    default: return "idle";
  }
}

/* A failed setup: a clear message on stderr, and a JSON line with "error". */
static void fail(const char *fmt, ...) {
  char msg[600], esc[1300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "loadgen: %s\n", msg);
  json_escape(esc, sizeof esc, msg);
  printf("{\"mode\":\"%s\",\"error\":\"%s\"}\n", mode_name(), esc);
  fflush(stdout);
  exit(1);
}

static void note(const char *fmt, ...) {
  if (st.first_error[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st.first_error, sizeof st.first_error, fmt, ap);
  va_end(ap);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q) fail("out of memory (%zu bytes)", n);
  return q;
}

/* ---- latency histogram: log-linear, 64 sub-buckets per power of two (~1.6 %) ---- */
static int hidx(uint64_t v) {
  if (v < 64) return (int)v;
  int m = 63 - __builtin_clzll(v);
  return (m - 5) * 64 + (int)((v >> (m - 6)) & 63);
}
static uint64_t hval(int i) { /* the middle of bucket i */
  if (i < 64) return (uint64_t)i;
  int m = i / 64 + 5, sub = i % 64;
  uint64_t lo = (uint64_t)(64 + sub) << (m - 6);
  return lo + ((1ull << (m - 6)) >> 1);
}
static void hadd(hist_t *h, int64_t v) {
  if (v < 0) v = 0;
  h->b[hidx((uint64_t)v)]++;
  h->n++;
  if ((uint64_t)v > h->max) h->max = (uint64_t)v;
}
static double hpct_us(const hist_t *h, double p) {
  if (h->n == 0) return 0;
  uint64_t want = (uint64_t)((double)h->n * p / 100.0);
  if (want >= h->n) want = h->n - 1;
  uint64_t acc = 0;
  for (int i = 0; i < 3840; i++) {
    acc += h->b[i];
    if (acc > want) {
      uint64_t v = hval(i);
      if (v > h->max) v = h->max;
      return (double)v / 1000.0;
    }
  }
  return (double)h->max / 1000.0;
}

/* ---- little-endian payload fields ---- */
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/*
 * With --frames text, messages are text frames holding JSON:
 * {"m":"<16 hex: timestamp><8 hex: sequence><4 hex: publisher>aaaa…"} padded to --size
 * (echo leaves out the publisher), as chat and dashboard traffic is.
 */
#define TEXT_AT 6 /* after {"m":" */
static void put_hex(uint8_t *p, uint64_t v, int digits) {
  static const char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; i--, v >>= 4) p[i] = (uint8_t)hex[v & 15];
}
static uint64_t get_hex(const uint8_t *p, int digits) {
  uint64_t v = 0;
  for (int i = 0; i < digits; i++) {
    uint8_t ch = p[i];
    v = (v << 4) | (uint64_t)(ch >= 'a' ? ch - 'a' + 10 : ch - '0');
  }
  return v;
}
static void put_fields(uint8_t *p, uint64_t ts, uint64_t seq, uint64_t pub) {
  if (!cfg.text) {
    put64(p, ts);
    put64(p + 8, seq);
    put64(p + 16, pub);
    return;
  }
  memcpy(p, "{\"m\":\"", TEXT_AT);
  put_hex(p + TEXT_AT, ts, 16);
  put_hex(p + TEXT_AT + 16, seq, 8);
  if (cfg.mode == MODE_BROADCAST) put_hex(p + TEXT_AT + 24, pub, 4);
  memcpy(p + cfg.size - 2, "\"}", 2);
}
static uint64_t field_ts(const uint8_t *p) { return cfg.text ? get_hex(p + TEXT_AT, 16) : get64(p); }
static uint64_t field_seq(const uint8_t *p) { return cfg.text ? get_hex(p + TEXT_AT + 16, 8) : get64(p + 8); }
static uint64_t field_pub(const uint8_t *p) { return cfg.text ? get_hex(p + TEXT_AT + 24, 4) : get64(p + 16); }
static int data_op(void) { return cfg.text ? OP_TEXT : OP_BINARY; }

/* ---- connections ---- */
static void ep_update(conn_t *c) {
  uint32_t want;
  if (c->state == ST_CONNECTING) want = EPOLLOUT;
  else want = EPOLLIN | (c->olen > c->ooff ? EPOLLOUT : 0);
  if (want == c->events) return;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
    fail("epoll_ctl: %s", strerror(errno));
  c->events = want;
}

static void conn_close(conn_t *c) {
  if (c->fd >= 0) close(c->fd); /* also removes it from the epoll set */
  c->fd = -1;
  c->events = 0;
  c->state = ST_CLOSED;
  c->plen = c->olen = c->ooff = 0;
  c->frag_active = 0;
  if (cfg.mode == MODE_HANDSHAKE) restart_stack[restart_n++] = c->idx;
}

static void conn_error(conn_t *c, const char *fmt, ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  st.conn_errors++;
  note("conn %d: %s", c->idx, msg);
  conn_close(c);
}

static void out_reserve(conn_t *c, size_t n) {
  if (c->ooff > 0 && c->ooff == c->olen) c->ooff = c->olen = 0;
  if ((size_t)c->olen + n <= c->ocap) return;
  if (c->ooff > 0) { /* compact */
    memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
    c->olen -= c->ooff;
    c->ooff = 0;
    if ((size_t)c->olen + n <= c->ocap) return;
  }
  size_t cap = c->ocap ? c->ocap : 256;
  while (cap < (size_t)c->olen + n) cap *= 2;
  if (cap > MAX_OUT) fail("conn %d: more than %u unsent bytes (the server stopped reading?)", c->idx, MAX_OUT);
  c->out = xrealloc(c->out, cap);
  c->ocap = (uint32_t)cap;
}

static void send_frame(conn_t *c, int op, const uint8_t *p, size_t len) {
  out_reserve(c, len + 14);
  uint8_t *o = c->out + c->olen;
  size_t h = 0;
  o[h++] = (uint8_t)(0x80 | op);
  if (len < 126) {
    o[h++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    o[h++] = 0x80 | 126;
    o[h++] = (uint8_t)(len >> 8);
    o[h++] = (uint8_t)len;
  } else {
    o[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) o[h++] = (uint8_t)(len >> (8 * i));
  }
  memcpy(o + h, MASK, 4);
  h += 4;
  for (size_t i = 0; i < len; i++) o[h + i] = p[i] ^ MASK[i & 3];
  c->olen += (uint32_t)(h + len);
}

static void send_close(conn_t *c, int code) {
  uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  send_frame(c, OP_CLOSE, p, code ? 2 : 0);
  c->sent_close = 1;
  c->state = ST_CLOSING;
}

static void flush(conn_t *c) {
  while (c->ooff < c->olen) {
    ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
    if (n > 0) {
      c->ooff += (uint32_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      conn_error(c, "write: %s", n < 0 ? strerror(errno) : "0 bytes");
      return;
    }
  }
  if (c->ooff == c->olen) c->ooff = c->olen = 0;
  ep_update(c);
}

static void start_connect(conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket: %s (open fds limit? RLIMIT_NOFILE is raised to the hard limit)", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->events = 0;
  c->plen = c->olen = c->ooff = 0;
  c->frag_active = c->sent_close = c->got_close = 0;
  c->t_start = g_now;
  c->state = ST_CONNECTING;
  const struct sockaddr_in *to = cfg.port2 > 0 && c->idx % 2 == 1 ? &srv2 : &srv;
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) {
    conn_error(c, "connect: %s", strerror(errno));
    return;
  }
  ep_update(c);
}

static void on_open(conn_t *c);
static void on_message(conn_t *c, int op, const uint8_t *p, uint64_t len);
static void on_eof(conn_t *c);

static void on_connected(conn_t *c) {
  int err = 0;
  socklen_t l = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
  if (err) {
    conn_error(c, "connect: %s", strerror(err));
    return;
  }
  c->state = ST_UPGRADING;
  out_reserve(c, upgrade_len);
  memcpy(c->out + c->olen, upgrade_req, upgrade_len);
  c->olen += (uint32_t)upgrade_len;
  flush(c);
}

static void on_close_frame(conn_t *c, const uint8_t *p, uint64_t len) {
  int code = len >= 2 ? (p[0] << 8) | p[1] : 1005;
  c->got_close = 1;
  if (!c->sent_close) { /* the server closed first: always unexpected here */
    st.server_closes++;
    if (!st.first_close_code) st.first_close_code = code;
    note("conn %d: the server sent close %d", c->idx, code);
    send_close(c, code == 1005 ? 1000 : code);
  }
}

static void handle_frame(conn_t *c, int fin, int op, const uint8_t *p, uint64_t len) {
  switch (op) {
    case OP_TEXT:
    case OP_BINARY:
      if (c->frag_active) {
        st.proto_errors++;
        conn_error(c, "new data frame inside a fragmented message");
        return;
      }
      if (fin) {
        on_message(c, op, p, len);
      } else {
        c->frag_active = 1;
        c->frag_op = (uint8_t)op;
        c->frag_len = len;
        c->frag_hlen = (uint32_t)(len < HEAD_KEEP ? len : HEAD_KEEP);
        memcpy(c->frag_head, p, c->frag_hlen);
      }
      return;
    case OP_CONT:
      if (!c->frag_active) {
        st.proto_errors++;
        conn_error(c, "continuation frame without a message");
        return;
      }
      if (c->frag_hlen < HEAD_KEEP) {
        uint32_t take = HEAD_KEEP - c->frag_hlen;
        if (take > len) take = (uint32_t)len;
        memcpy(c->frag_head + c->frag_hlen, p, take);
        c->frag_hlen += take;
      }
      c->frag_len += len;
      if (fin) {
        c->frag_active = 0;
        on_message(c, c->frag_op, c->frag_head, c->frag_len);
      }
      return;
    case OP_PING:
      st.pings++;
      if (c->state == ST_OPEN) send_frame(c, OP_PONG, p, len);
      return;
    case OP_PONG:
      return;
    case OP_CLOSE:
      on_close_frame(c, p, len);
      return;
    default:
      st.proto_errors++;
      conn_error(c, "unknown opcode %d", op);
  }
}

/* Parses frames from buf; returns the bytes consumed (the rest is an incomplete frame). */
static size_t parse_frames(conn_t *c, uint8_t *buf, size_t total) {
  size_t off = 0;
  while (c->state == ST_OPEN || c->state == ST_CLOSING) {
    size_t avail = total - off;
    if (avail < 2) break;
    uint8_t b0 = buf[off], b1 = buf[off + 1];
    uint64_t len = b1 & 127;
    size_t h = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)buf[off + 2] << 8) | buf[off + 3];
      h = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | buf[off + 2 + i];
      h = 10;
    }
    if (b1 & 0x80) {
      st.proto_errors++;
      conn_error(c, "masked server frame");
      return off;
    }
    if (b0 & 0x70) {
      st.proto_errors++;
      conn_error(c, "RSV bits set (0x%02x)", b0);
      return off;
    }
    if (len > RBUF_SIZE - 16) {
      st.proto_errors++;
      conn_error(c, "frame of %llu bytes is larger than this load generator handles", (unsigned long long)len);
      return off;
    }
    if (avail - h < len) break;
    off += h + len;
    handle_frame(c, b0 >> 7, b0 & 15, buf + off - len, len);
  }
  return off;
}

static size_t parse_upgrade(conn_t *c, uint8_t *buf, size_t total) {
  uint8_t *end = memmem(buf, total, "\r\n\r\n", 4);
  if (!end) {
    if (total > 8192) conn_error(c, "HTTP response headers longer than 8 KiB");
    return 0;
  }
  size_t hlen = (size_t)(end - buf) + 4;
  if (total < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
    char line[64];
    size_t n = 0;
    while (n < hlen && n < sizeof line - 1 && buf[n] != '\r') line[n] = (char)buf[n], n++;
    line[n] = 0;
    conn_error(c, "upgrade refused: %s", line);
    return total;
  }
  if (!memmem(buf, hlen, WS_ACCEPT, strlen(WS_ACCEPT))) {
    st.proto_errors++;
    conn_error(c, "101 without the expected Sec-WebSocket-Accept");
    return total;
  }
  c->state = ST_OPEN;
  on_open(c);
  return hlen;
}

static void on_readable(conn_t *c) {
  size_t have = c->plen;
  if (have) memcpy(rbuf, c->pend, have);
  c->plen = 0;
  ssize_t n;
  do n = read(c->fd, rbuf + have, RBUF_SIZE - have);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      c->plen = (uint32_t)have; /* keep the partial bytes */
      return;
    }
    if (c->state == ST_CLOSING && c->got_close) on_eof(c);
    else conn_error(c, "read: %s", strerror(errno));
    return;
  }
  if (n == 0) {
    on_eof(c);
    return;
  }
  g_now = now_ns();
  size_t total = have + (size_t)n, off = 0;
  if (c->state == ST_UPGRADING) off = parse_upgrade(c, rbuf, total);
  if (c->state == ST_OPEN || c->state == ST_CLOSING) off += parse_frames(c, rbuf + off, total - off);
  if (c->state == ST_CLOSED || c->state == ST_FREE) return;
  if (off < total) {
    size_t rest = total - off;
    if (rest > c->pcap) {
      c->pend = xrealloc(c->pend, rest);
      c->pcap = (uint32_t)rest;
    }
    memcpy(c->pend, rbuf + off, rest);
    c->plen = (uint32_t)rest;
  }
  if (c->olen > c->ooff) flush(c);
}

static void on_eof(conn_t *c) {
  if (c->state == ST_CLOSING && c->got_close) { /* a completed close handshake */
    if (cfg.mode == MODE_HANDSHAKE && st.measuring) {
      st.cycles++;
      hadd(&close_lat, g_now - c->t_open);
    }
    conn_close(c);
    return;
  }
  if (cfg.mode == MODE_HANDSHAKE && st.stopping) {
    conn_close(c);
    return;
  }
  conn_error(c, "the server closed the TCP connection (state %d)", c->state);
}

/* ---- the scenarios ---- */
static void echo_send(conn_t *c) {
  uint8_t p[MAX_SIZE];
  memcpy(p, payload_tpl, (size_t)cfg.size);
  put_fields(p, (uint64_t)g_now, c->next_seq++, 0);
  send_frame(c, data_op(), p, (size_t)cfg.size);
  c->inflight++;
}

static void publish(conn_t *c) {
  uint8_t p[MAX_SIZE];
  memcpy(p, payload_tpl, (size_t)cfg.size);
  put_fields(p, (uint64_t)g_now, c->next_seq++, (uint64_t)c->idx);
  send_frame(c, data_op(), p, (size_t)cfg.size);
  pub_sent[c->idx]++;
  st.published_all++;
  if (st.measuring) st.published++;
}

static void on_open(conn_t *c) {
  if (cfg.mode == MODE_HANDSHAKE) {
    c->t_open = g_now;
    if (st.measuring) {
      st.handshakes++;
      hadd(&hs_lat, g_now - c->t_start);
    }
    if (cfg.close_fin) {
      if (st.measuring) st.cycles++;
      conn_close(c);
    } else {
      send_close(c, 1000);
    }
  }
}

static void on_message(conn_t *c, int op, const uint8_t *p, uint64_t len) {
  if (cfg.mode == MODE_ECHO) {
    if (op != data_op() || len != (uint64_t)cfg.size) {
      st.bad_payload++;
      note("conn %d: echo came back as opcode %d, %llu bytes", c->idx, op, (unsigned long long)len);
      if (len < HEAD_KEEP) return;
    }
    uint64_t seq = field_seq(p);
    if (seq != c->expect_seq) {
      st.reordered++;
      note("conn %d: echo %llu arrived, expected %llu", c->idx, (unsigned long long)seq,
           (unsigned long long)c->expect_seq);
    }
    c->expect_seq = seq + 1;
    if (st.measuring) {
      st.msgs++;
      hadd(&lat, g_now - (int64_t)field_ts(p));
    }
    c->inflight--;
    if (!st.stopping && c->state == ST_OPEN) echo_send(c);
  } else if (cfg.mode == MODE_BROADCAST) {
    if (op != data_op() || len != (uint64_t)cfg.size) {
      st.bad_payload++;
      note("conn %d: broadcast arrived as opcode %d, %llu bytes", c->idx, op, (unsigned long long)len);
      return;
    }
    uint64_t pub = field_pub(p), seq = field_seq(p);
    if (pub >= (uint64_t)cfg.pubs) {
      st.bad_payload++;
      note("conn %d: broadcast from unknown publisher %llu", c->idx, (unsigned long long)pub);
      return;
    }
    uint64_t *e = &c->expect[pub];
    if (seq == *e) {
      (*e)++;
    } else if (seq > *e) {
      st.lost += seq - *e;
      note("conn %d: broadcasts %llu..%llu of publisher %llu never arrived", c->idx, (unsigned long long)*e,
           (unsigned long long)(seq - 1), (unsigned long long)pub);
      *e = seq + 1;
    } else {
      st.reordered++;
      note("conn %d: broadcast %llu of publisher %llu arrived after %llu", c->idx, (unsigned long long)seq,
           (unsigned long long)pub, (unsigned long long)(*e - 1));
    }
    if ((uint64_t)c->idx == pub) c->own_seen++;
    if (st.measuring) {
      st.msgs++;
      hadd(&lat, g_now - (int64_t)field_ts(p));
    }
  }
  else if (cfg.mode == MODE_IDLE && cfg.messages > 0) {
    /* the echoes of --messages: checked like echo's */
    if (op != data_op() || len != (uint64_t)cfg.size) {
      st.bad_payload++;
      note("conn %d: echo came back as opcode %d, %llu bytes", c->idx, op, (unsigned long long)len);
      if (len < HEAD_KEEP) return;
    }
    uint64_t seq = field_seq(p);
    if (seq != c->expect_seq) st.reordered++;
    c->expect_seq = seq + 1;
    st.msgs++;
    c->inflight--;
  }
  /* handshake, idle without --messages: messages are not expected and ignored */
}

static void handle_events(int timeout_ms) {
  static struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    fail("epoll_wait: %s", strerror(errno));
  }
  g_now = now_ns();
  for (int i = 0; i < n; i++) {
    conn_t *c = evs[i].data.ptr;
    uint32_t e = evs[i].events;
    if (c->state == ST_CLOSED || c->state == ST_FREE) continue; /* closed earlier in this batch */
    if (c->state == ST_CONNECTING) {
      on_connected(c);
      continue;
    }
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
    if ((e & EPOLLOUT) && (c->state == ST_OPEN || c->state == ST_UPGRADING || c->state == ST_CLOSING)) flush(c);
  }
}

static int count_state(int s) {
  int n = 0;
  for (int i = 0; i < nconns; i++) n += conns[i].state == s;
  return n;
}

/* Opens all connections, at most cfg.batch handshakes at a time. Fails the run on any error. */
static void open_all(void) {
  int64_t deadline = now_ns() + (int64_t)(cfg.setup_timeout * NS);
  int next = 0, opened = 0;
  for (;;) {
    g_now = now_ns();
    opened = 0;
    int pending = 0;
    for (int i = 0; i < next; i++) {
      int s = conns[i].state;
      if (s == ST_OPEN) opened++;
      else if (s == ST_CONNECTING || s == ST_UPGRADING) pending++;
      else if (s == ST_CLOSED || s == ST_CLOSING)
        fail("opened %d of %d connections to 127.0.0.1:%d%s, then: %s", opened, nconns, cfg.port, cfg.path,
             st.first_error[0] ? st.first_error : "a connection closed during setup");
    }
    if (opened == nconns) return;
    while (next < nconns && pending < cfg.batch) {
      start_connect(&conns[next++]);
      pending++;
    }
    if (g_now > deadline)
      fail("opened only %d of %d connections to 127.0.0.1:%d%s within %.0f s (%d still connecting)", opened, nconns,
           cfg.port, cfg.path, cfg.setup_timeout, pending);
    handle_events(50);
  }
}

static void alloc_conns(int n) {
  nconns = n;
  conns = calloc((size_t)n, sizeof(conn_t));
  if (!conns) fail("out of memory for %d connections", n);
  for (int i = 0; i < n; i++) {
    conns[i].idx = i;
    conns[i].fd = -1;
  }
}

static void raise_nofile(int need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) fail("getrlimit: %s", strerror(errno));
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fail("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
                                               strerror(errno));
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need)
    fail("%d connections need about %d file descriptors but the hard RLIMIT_NOFILE is %llu (raise it: ulimit -Hn)",
         need - 64, need, (unsigned long long)rl.rlim_cur);
}

static void phase(const char *what) {
  fprintf(stderr, "phase %s\n", what);
  fflush(stderr);
}

/* Runs handle_events until `end`, switching to the measured phase at `measure_at`. */
typedef void (*pump_fn)(void);
static int64_t run_phases(int64_t measure_at, int64_t end, pump_fn pump, int timeout_ms) {
  int64_t started = 0;
  for (;;) {
    g_now = now_ns();
    if (!st.measuring && g_now >= measure_at) {
      st.measuring = 1;
      started = g_now;
      phase("measure");
    }
    if (g_now >= end) break;
    if (pump) pump();
    handle_events(timeout_ms);
  }
  return started;
}

static void print_common_tail(void) {
  char esc[420];
  json_escape(esc, sizeof esc, st.first_error);
  printf(",\"pings\":%llu,\"conn_errors\":%llu,\"protocol_errors\":%llu,\"server_closes\":%llu,"
         "\"first_close_code\":%d,\"first_error\":\"%s\"}\n",
         (unsigned long long)st.pings, (unsigned long long)st.conn_errors, (unsigned long long)st.proto_errors,
         (unsigned long long)st.server_closes, st.first_close_code, esc);
  fflush(stdout);
}

static void run_echo(void) {
  alloc_conns(cfg.conns);
  int64_t t0 = now_ns();
  open_all();
  int64_t setup_ms = (now_ns() - t0) / 1000000;
  g_now = now_ns();
  for (int i = 0; i < nconns; i++) {
    for (int k = 0; k < cfg.inflight; k++) echo_send(&conns[i]);
    flush(&conns[i]);
  }
  int64_t measure_at = g_now + (int64_t)(cfg.warmup * NS);
  int64_t end = measure_at + (int64_t)(cfg.seconds * NS);
  int64_t started = run_phases(measure_at, end, NULL, 100);
  st.measuring = 0;
  st.stopping = 1;
  double elapsed = (double)(g_now - started) / NS;
  phase("end");
  /* drain: wait (at most 3 s) for the messages still in flight */
  int64_t drain_end = now_ns() + 3 * NS;
  for (;;) {
    uint64_t out = 0;
    for (int i = 0; i < nconns; i++)
      if (conns[i].state == ST_OPEN) out += (uint64_t)conns[i].inflight;
    if (out == 0 || now_ns() >= drain_end) break;
    handle_events(20);
  }
  uint64_t unanswered = 0;
  for (int i = 0; i < nconns; i++) unanswered += (uint64_t)conns[i].inflight;
  int open_end = count_state(ST_OPEN);
  printf("{\"mode\":\"echo\",\"conns\":%d,\"inflight\":%d,\"size\":%d,\"seconds\":%.3f,\"setup_ms\":%lld,"
         "\"round_trips\":%llu,\"rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
         "\"unanswered\":%llu,\"out_of_order\":%llu,\"bad_payload\":%llu,\"open_at_end\":%d",
         cfg.conns, cfg.inflight, cfg.size, elapsed, (long long)setup_ms, (unsigned long long)st.msgs,
         elapsed > 0 ? (double)st.msgs / elapsed : 0, hpct_us(&lat, 50), hpct_us(&lat, 99), hpct_us(&lat, 99.9),
         (double)lat.max / 1000.0, (unsigned long long)unanswered, (unsigned long long)st.reordered,
         (unsigned long long)st.bad_payload, open_end);
  print_common_tail();
}

static void broadcast_pump(void) {
  if (st.stopping) return;
  if (cfg.rate <= 0) { /* as fast as the server keeps up: a window of own broadcasts not yet seen */
    for (int p = 0; p < cfg.pubs; p++) {
      conn_t *c = &conns[p];
      if (c->state != ST_OPEN) continue;
      int sent = 0;
      while (pub_sent[p] - c->own_seen < (uint64_t)cfg.window) publish(c), sent++;
      if (sent) flush(c);
    }
    return;
  }
  /* a target rate, spread over the publishers; the window caps what may be outstanding */
  static int64_t t_start = 0;
  static uint64_t rr = 0;
  if (!t_start) t_start = g_now;
  uint64_t due = (uint64_t)(cfg.rate * (double)(g_now - t_start) / NS);
  int stalled = 0;
  while (st.published_all < due && stalled < cfg.pubs) {
    conn_t *c = &conns[rr++ % (uint64_t)cfg.pubs];
    if (c->state != ST_OPEN || pub_sent[c->idx] - c->own_seen >= (uint64_t)cfg.window) {
      stalled++;
      continue;
    }
    stalled = 0;
    publish(c);
  }
  if (stalled >= cfg.pubs) st.rate_capped++;
  for (int p = 0; p < cfg.pubs; p++)
    if (conns[p].olen > conns[p].ooff) flush(&conns[p]);
}

static uint64_t broadcast_missing(void) {
  uint64_t missing = 0;
  for (int i = 0; i < nconns; i++) {
    if (conns[i].state != ST_OPEN) continue;
    for (int p = 0; p < cfg.pubs; p++) missing += pub_sent[p] - conns[i].expect[p];
  }
  return missing;
}

static void run_broadcast(void) {
  if (cfg.pubs < 1 || cfg.pubs > MAX_PUBS || cfg.pubs > cfg.subs) fail("--pubs must be 1..%d and <= --subs", MAX_PUBS);
  if (cfg.window < 1) fail("--window must be >= 1");
  alloc_conns(cfg.subs);
  for (int i = 0; i < nconns; i++) {
    conns[i].expect = calloc((size_t)cfg.pubs, sizeof(uint64_t));
    if (!conns[i].expect) fail("out of memory");
  }
  int64_t t0 = now_ns();
  open_all();
  int64_t setup_ms = (now_ns() - t0) / 1000000;
  g_now = now_ns();
  int64_t measure_at = g_now + (int64_t)(cfg.warmup * NS);
  int64_t end = measure_at + (int64_t)(cfg.seconds * NS);
  int64_t started = run_phases(measure_at, end, broadcast_pump, cfg.rate > 0 ? 1 : 100);
  st.measuring = 0;
  st.stopping = 1;
  double elapsed = (double)(g_now - started) / NS;
  phase("end");
  int64_t drain_end = now_ns() + 3 * NS;
  uint64_t missing;
  for (;;) {
    missing = broadcast_missing();
    if (missing == 0 || now_ns() >= drain_end) break;
    handle_events(20);
  }
  int open_end = count_state(ST_OPEN);
  printf("{\"mode\":\"broadcast\",\"subs\":%d,\"pubs\":%d,\"size\":%d,\"window\":%d,\"target_rate\":%.1f,"
         "\"seconds\":%.3f,\"setup_ms\":%lld,\"published\":%llu,\"publish_rate\":%.1f,\"deliveries\":%llu,"
         "\"rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"lost\":%llu,"
         "\"missing_at_end\":%llu,\"out_of_order\":%llu,\"bad_payload\":%llu,\"rate_capped\":%llu,\"open_at_end\":%d",
         cfg.subs, cfg.pubs, cfg.size, cfg.window, cfg.rate, elapsed, (long long)setup_ms,
         (unsigned long long)st.published, elapsed > 0 ? (double)st.published / elapsed : 0,
         (unsigned long long)st.msgs, elapsed > 0 ? (double)st.msgs / elapsed : 0, hpct_us(&lat, 50),
         hpct_us(&lat, 99), hpct_us(&lat, 99.9), (double)lat.max / 1000.0, (unsigned long long)st.lost,
         (unsigned long long)missing, (unsigned long long)st.reordered, (unsigned long long)st.bad_payload,
         (unsigned long long)st.rate_capped, open_end);
  print_common_tail();
}

static void handshake_pump(void) {
  /* restart finished slots; time out stuck ones (5 s) */
  static int64_t last_check = 0;
  if (g_now - last_check > NS / 10) {
    last_check = g_now;
    for (int i = 0; i < nconns; i++) {
      conn_t *c = &conns[i];
      if (c->state != ST_CLOSED && c->state != ST_FREE && g_now - c->t_start > 5 * NS) {
        st.timeouts++;
        note("conn slot %d: no complete open/upgrade/close cycle within 5 s (state %d)", i, c->state);
        conn_close(c);
      }
    }
  }
  while (restart_n > 0) start_connect(&conns[restart_stack[--restart_n]]);
}

static void run_handshake(void) {
  alloc_conns(cfg.concurrency);
  restart_stack = calloc((size_t)cfg.concurrency * 2 + 4, sizeof(int));
  if (!restart_stack) fail("out of memory");
  g_now = now_ns();
  for (int i = 0; i < nconns; i++) start_connect(&conns[i]);
  int64_t measure_at = g_now + (int64_t)(cfg.warmup * NS);
  int64_t end = measure_at + (int64_t)(cfg.seconds * NS);
  int64_t started = run_phases(measure_at, end, handshake_pump, 50);
  st.measuring = 0;
  st.stopping = 1;
  double elapsed = (double)(g_now - started) / NS;
  phase("end");
  restart_n = 0;
  for (int i = 0; i < nconns; i++)
    if (conns[i].fd >= 0) close(conns[i].fd);
  printf("{\"mode\":\"handshake\",\"concurrency\":%d,\"close\":\"%s\",\"seconds\":%.3f,\"handshakes\":%llu,"
         "\"rate\":%.1f,\"cycles\":%llu,\"cycle_rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"close_p50_us\":%.1f,\"close_p99_us\":%.1f,\"timeouts\":%llu",
         cfg.concurrency, cfg.close_fin ? "fin" : "frame", elapsed, (unsigned long long)st.handshakes,
         elapsed > 0 ? (double)st.handshakes / elapsed : 0, (unsigned long long)st.cycles,
         elapsed > 0 ? (double)st.cycles / elapsed : 0, hpct_us(&hs_lat, 50), hpct_us(&hs_lat, 99),
         hpct_us(&close_lat, 50), hpct_us(&close_lat, 99), (unsigned long long)st.timeouts);
  print_common_tail();
}

static void run_idle(void) {
  alloc_conns(cfg.conns);
  int64_t t0 = now_ns();
  open_all();
  int64_t setup_ms = (now_ns() - t0) / 1000000;
  /* --messages: K rounds, each one echo per open connection, answered before the next */
  uint64_t unanswered = 0;
  int64_t exchange_end = now_ns() + (int64_t)(cfg.setup_timeout * NS);
  for (int round = 0; round < cfg.messages && unanswered == 0; round++) {
    g_now = now_ns();
    for (int i = 0; i < nconns; i++)
      if (conns[i].state == ST_OPEN) {
        echo_send(&conns[i]);
        flush(&conns[i]);
      }
    for (;;) {
      uint64_t out = 0;
      for (int i = 0; i < nconns; i++)
        if (conns[i].state == ST_OPEN) out += (uint64_t)conns[i].inflight;
      if (out == 0) break;
      if (now_ns() >= exchange_end) {
        unanswered = out;
        break;
      }
      handle_events(20);
    }
  }
  fprintf(stderr, "ready %d\n", nconns);
  fflush(stderr);
  int64_t end = now_ns() + (int64_t)(cfg.hold * NS);
  for (;;) {
    g_now = now_ns();
    if (g_now >= end) break;
    handle_events(100);
  }
  int open_at_end = count_state(ST_OPEN);
  phase("closing");
  /* a proper close: close frame 1000 on every connection, wait (at most 3 s) for the server's */
  for (int i = 0; i < nconns; i++)
    if (conns[i].state == ST_OPEN) {
      send_close(&conns[i], 1000);
      flush(&conns[i]);
    }
  int64_t close_end = now_ns() + 3 * NS;
  int closing;
  while ((closing = count_state(ST_CLOSING)) > 0 && now_ns() < close_end) handle_events(50);
  for (int i = 0; i < nconns; i++)
    if (conns[i].fd >= 0) close(conns[i].fd);
  printf("{\"mode\":\"idle\",\"conns\":%d,\"hold\":%.1f,\"setup_ms\":%lld,\"open_at_end\":%d,"
         "\"close_unanswered\":%d,\"messages\":%d,\"exchanged\":%llu,\"unanswered\":%llu,\"out_of_order\":%llu,"
         "\"bad_payload\":%llu",
         cfg.conns, cfg.hold, (long long)setup_ms, open_at_end, closing, cfg.messages, (unsigned long long)st.msgs,
         (unsigned long long)unanswered, (unsigned long long)st.reordered, (unsigned long long)st.bad_payload);
  print_common_tail();
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen echo|broadcast|handshake|idle --port P [--path /p] [--conns N] [--inflight N]\n"
          "         [--size B] [--seconds S] [--warmup S] [--subs N] [--pubs N] [--rate R] [--window K]\n"
          "         [--concurrency N] [--close frame|fin] [--hold S] [--messages K] [--batch N] [--setup-timeout S] [--port2 P]\n"
          "         [--frames binary|text]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *m = argv[1];
  if (!strcmp(m, "echo")) cfg.mode = MODE_ECHO;
  else if (!strcmp(m, "broadcast")) cfg.mode = MODE_BROADCAST;
  else if (!strcmp(m, "handshake")) cfg.mode = MODE_HANDSHAKE;
  else if (!strcmp(m, "idle")) cfg.mode = MODE_IDLE;
  else usage();
  cfg.port = 0;
  cfg.path = cfg.mode == MODE_BROADCAST ? "/broadcast" : "/echo";
  cfg.conns = cfg.mode == MODE_IDLE ? 10000 : 100;
  cfg.inflight = 16;
  cfg.size = cfg.mode == MODE_BROADCAST ? 64 : 32;
  cfg.seconds = 10;
  cfg.warmup = cfg.mode == MODE_HANDSHAKE ? 1 : 2;
  cfg.subs = 1000;
  cfg.pubs = 1;
  cfg.window = 32;
  cfg.rate = 0;
  cfg.concurrency = 50;
  cfg.hold = 5;
  cfg.batch = 256;
  cfg.setup_timeout = 30;
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(k, "--port")) cfg.port = atoi(v);
    else if (!strcmp(k, "--port2")) cfg.port2 = atoi(v);
    else if (!strcmp(k, "--path")) cfg.path = v;
    else if (!strcmp(k, "--conns")) cfg.conns = atoi(v);
    else if (!strcmp(k, "--inflight")) cfg.inflight = atoi(v);
    else if (!strcmp(k, "--size")) cfg.size = atoi(v);
    else if (!strcmp(k, "--seconds")) cfg.seconds = atof(v);
    else if (!strcmp(k, "--warmup")) cfg.warmup = atof(v);
    else if (!strcmp(k, "--subs")) cfg.subs = atoi(v);
    else if (!strcmp(k, "--pubs")) cfg.pubs = atoi(v);
    else if (!strcmp(k, "--rate")) cfg.rate = atof(v);
    else if (!strcmp(k, "--window")) cfg.window = atoi(v);
    else if (!strcmp(k, "--concurrency")) cfg.concurrency = atoi(v);
    else if (!strcmp(k, "--hold")) cfg.hold = atof(v);
    else if (!strcmp(k, "--batch")) cfg.batch = atoi(v);
    else if (!strcmp(k, "--messages")) cfg.messages = atoi(v);
    else if (!strcmp(k, "--setup-timeout")) cfg.setup_timeout = atof(v);
    else if (!strcmp(k, "--frames")) {
      if (!strcmp(v, "text")) cfg.text = 1;
      else if (!strcmp(v, "binary")) cfg.text = 0;
      else usage();
    }
    else if (!strcmp(k, "--close")) {
      if (!strcmp(v, "fin")) cfg.close_fin = 1;
      else if (!strcmp(v, "frame")) cfg.close_fin = 0;
      else usage();
    } else usage();
  }
  if (cfg.port <= 0 || cfg.port > 65535) fail("--port is required (1..65535)");
  if (cfg.port2 < 0 || cfg.port2 > 65535) fail("--port2 must be 1..65535");
  if (cfg.path[0] != '/' || strlen(cfg.path) > 200 || strpbrk(cfg.path, " \r\n")) fail("--path must be like /echo");
  if (cfg.size < 24 || cfg.size > MAX_SIZE) fail("--size must be 24..%d (the payload carries a timestamp, a sequence and a publisher id)", MAX_SIZE);
  if (cfg.text && cfg.size < (cfg.mode == MODE_BROADCAST ? 36 : 32))
    fail("--frames text needs --size of at least %d (the JSON around the fields)", cfg.mode == MODE_BROADCAST ? 36 : 32);
  if (cfg.seconds <= 0 || cfg.seconds > 600 || cfg.warmup < 0 || cfg.warmup > 600) fail("--seconds/--warmup out of range");
  if (cfg.messages < 0 || cfg.messages > 100000) fail("--messages must be 0..100000");
  if (cfg.hold < 0 || cfg.hold > 600 || cfg.setup_timeout <= 0 || cfg.setup_timeout > 600) fail("--hold/--setup-timeout out of range");
  if (cfg.conns < 1 || cfg.subs < 1 || cfg.inflight < 1 || cfg.concurrency < 1 || cfg.batch < 1) fail("counts must be >= 1");
  if (cfg.conns > 1000000 || cfg.subs > 1000000 || cfg.concurrency > 100000) fail("counts too large");

  signal(SIGPIPE, SIG_IGN);
  int need = (cfg.mode == MODE_BROADCAST ? cfg.subs : cfg.mode == MODE_HANDSHAKE ? cfg.concurrency : cfg.conns) + 64;
  raise_nofile(need);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1: %s", strerror(errno));
  rbuf = malloc(RBUF_SIZE);
  if (!rbuf) fail("out of memory");
  for (int i = 0; i < MAX_SIZE; i++) payload_tpl[i] = (uint8_t)('a' + i % 26);
  memset(&srv, 0, sizeof srv);
  srv.sin_family = AF_INET;
  srv.sin_port = htons((uint16_t)cfg.port);
  srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  srv2 = srv;
  srv2.sin_port = htons((uint16_t)cfg.port2);
  upgrade_len = (size_t)snprintf(upgrade_req, sizeof upgrade_req,
                                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                 cfg.path, cfg.port, WS_KEY);
  switch (cfg.mode) {
    case MODE_ECHO: run_echo(); break;
    case MODE_BROADCAST: run_broadcast(); break;
    case MODE_HANDSHAKE: run_handshake(); break;
    default: run_idle();
  }
  return 0;
}
