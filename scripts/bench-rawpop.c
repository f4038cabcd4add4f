/*
 * bench-rawpop: the smallest POP3 reader scripts/bench could think of, used as the reference rows of the benchmark.
 *
 *   "limit": log in, UIDL, RETR every message not already seen with up to WINDOW commands in flight (RFC 2449
 *            PIPELINING), throw the data away, QUIT. Roughly the fastest any client can pull the mailbox here.
 *   "floor": the same, but every message (dot-unstuffed, CRLF -> LF) is piped into `sh -c MDA` (popen), one after
 *            the other: the cost of per-message delivery that no retriever running that MDA can avoid.
 *
 * It keeps no state of its own and has no error recovery: any unexpected reply ends it with exit status 1.
 *
 * Build:  gcc -O2 -o bench-rawpop bench-rawpop.c -lssl -lcrypto      (or -DNO_TLS, without OpenSSL)
 * Usage:  bench-rawpop [-p port] [-t -C cafile] [-m mda] [-u seenfile] [-w window] [-q] user:password ...
 *   -p port      POP3 port on 127.0.0.1 (default 110)
 *   -t           implicit TLS (POP3S); the certificate must verify against -C cafile and match 127.0.0.1
 *   -m mda       pipe every message into `sh -c mda` (exit status 0 required)
 *   -u seenfile  UIDLs (one per line) already seen: those messages are not retrieved
 *   -w window    most RETR commands in flight (default 64)
 *   -q           no summary on stderr
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef NO_TLS
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#define HOST "127.0.0.1"
#define BUF_SIZE (256 * 1024)

static int port = 110, use_tls, quiet, window = 64;
static const char *cafile, *mda, *seen_path;
static long long total_msgs, total_bytes;

static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("bench-rawpop: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---- connection: a socket, optionally wrapped in TLS, with a read buffer ---- */

struct conn {
	int fd;
#ifndef NO_TLS
	SSL *ssl;
#endif
	char buf[BUF_SIZE];
	size_t start, end; /* unread bytes are buf[start..end) */
};

static ssize_t conn_read(struct conn *c, char *dst, size_t n) {
#ifndef NO_TLS
	if (c->ssl) {
		int r = SSL_read(c->ssl, dst, (int)n);
		return r > 0 ? r : -1;
	}
#endif
	ssize_t r;
	do r = read(c->fd, dst, n); while (r < 0 && errno == EINTR);
	return r > 0 ? r : -1;
}

static void conn_write(struct conn *c, const char *src, size_t n) {
	while (n > 0) {
		ssize_t w;
#ifndef NO_TLS
		if (c->ssl) w = SSL_write(c->ssl, src, (int)n);
		else
#endif
			w = write(c->fd, src, n);
		if (w <= 0) {
			if (w < 0 && errno == EINTR) continue;
			die("write failed");
		}
		src += w;
		n -= (size_t)w;
	}
}

/* The next line, CRLF included; valid until the next call. */
static char *conn_line(struct conn *c, size_t *len) {
	for (;;) {
		char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
		if (nl) {
			char *line = c->buf + c->start;
			*len = (size_t)(nl - line) + 1;
			c->start += *len;
			return line;
		}
		if (c->start > 0) { /* move the partial line to the front */
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->end == sizeof c->buf) die("line longer than %d bytes", BUF_SIZE);
		ssize_t r = conn_read(c, c->buf + c->end, sizeof c->buf - c->end);
		if (r <= 0) die("connection closed by the server");
		c->end += (size_t)r;
	}
}

static void expect_ok(struct conn *c, const char *what) {
	size_t len;
	char *line = conn_line(c, &len);
	if (len < 3 || memcmp(line, "+OK", 3) != 0) die("%s: %.*s", what, (int)len, line);
}

static void command(struct conn *c, const char *what, const char *fmt, ...) {
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd) die("command too long");
	conn_write(c, cmd, (size_t)n);
	expect_ok(c, what);
}

#ifndef NO_TLS
static SSL_CTX *tls_context(void) {
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) die("SSL_CTX_new failed");
	if (!cafile || SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) die("cannot load CA file %s", cafile ? cafile : "(none: use -C)");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}
#endif

static struct conn *conn_open(void) {
	struct conn *c = calloc(1, sizeof *c);
	if (!c) die("out of memory");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	inet_pton(AF_INET, HOST, &sa.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect %s:%d: %s", HOST, port, strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (use_tls) {
#ifdef NO_TLS
		die("built without TLS (-DNO_TLS)");
#else
		static SSL_CTX *ctx;
		if (!ctx) ctx = tls_context();
		c->ssl = SSL_new(ctx);
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), HOST);
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_connect(c->ssl) != 1) die("TLS handshake or certificate verification failed");
#endif
	}
	return c;
}

static void conn_close(struct conn *c) {
#ifndef NO_TLS
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
#endif
	close(c->fd);
	free(c);
}

/* ---- seen UIDLs: a sorted array, searched with bsearch ---- */

static char **seen;
static size_t nseen;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void load_seen(void) {
	FILE *f = fopen(seen_path, "r");
	if (!f) die("cannot read %s", seen_path);
	size_t cap = 0;
	char *line = NULL;
	size_t n = 0;
	ssize_t len;
	while ((len = getline(&line, &n, f)) > 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
		if (len == 0) continue;
		if (nseen == cap) {
			cap = cap ? cap * 2 : 1024;
			seen = realloc(seen, cap * sizeof *seen);
			if (!seen) die("out of memory");
		}
		seen[nseen++] = strdup(line);
	}
	free(line);
	fclose(f);
	qsort(seen, nseen, sizeof *seen, cmp_str);
}

static int is_seen(const char *uidl) { return nseen && bsearch(&uidl, seen, nseen, sizeof *seen, cmp_str) != NULL; }

/* ---- one message: the data after "+OK", up to the lone "." ---- */

static void read_message(struct conn *c) {
	FILE *out = NULL;
	if (mda && !(out = popen(mda, "w"))) die("popen %s: %s", mda, strerror(errno));
	for (;;) {
		size_t len;
		char *line = conn_line(c, &len);
		if (line[0] == '.') {
			if (len == 3 && line[1] == '\r') break; /* ".\r\n": end of message */
			line++, len--;                          /* dot-stuffed line */
		}
		total_bytes += (long long)len;
		if (out) {
			if (len >= 2 && line[len - 2] == '\r') line[len - 2] = '\n', len--;
			fwrite(line, 1, len, out);
		}
	}
	if (out) {
		int status = pclose(out);
		if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("MDA failed (status %d)", status);
	}
	total_msgs++;
}

/* ---- one account ---- */

static void fetch_account(const char *user, const char *password) {
	struct conn *c = conn_open();
	expect_ok(c, "greeting");
	command(c, "USER", "USER %s\r\n", user);
	command(c, "PASS", "PASS %s\r\n", password);

	/* UIDL: the message numbers to retrieve */
	command(c, "UIDL", "UIDL\r\n");
	size_t nwant = 0, cap = 1024;
	long *want = malloc(cap * sizeof *want);
	for (;;) {
		size_t len;
		char *line = conn_line(c, &len);
		if (len == 3 && line[0] == '.') break;
		line[len - (len >= 2 && line[len - 2] == '\r' ? 2 : 1)] = 0;
		char *sp = strchr(line, ' ');
		if (!sp) die("bad UIDL line: %s", line);
		*sp = 0;
		if (is_seen(sp + 1)) continue;
		if (nwant == cap) want = realloc(want, (cap *= 2) * sizeof *want);
		if (!want) die("out of memory");
		want[nwant++] = atol(line);
	}

	/* RETR, pipelined: refill the window when half of it has been answered */
	char *cmds = malloc((size_t)window * 32);
	size_t sent = 0, done = 0, refill = window > 1 ? (size_t)window / 2 : 1;
	while (done < nwant) {
		if (sent < nwant && sent - done <= (size_t)window - refill) {
			size_t o = 0;
			while (sent < nwant && sent - done < (size_t)window) o += (size_t)sprintf(cmds + o, "RETR %ld\r\n", want[sent++]);
			conn_write(c, cmds, o);
		}
		expect_ok(c, "RETR");
		read_message(c);
		done++;
	}
	free(cmds);
	free(want);
	command(c, "QUIT", "QUIT\r\n");
	conn_close(c);
}

int main(int argc, char **argv) {
	int opt;
	while ((opt = getopt(argc, argv, "p:tC:m:u:w:q")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 't': use_tls = 1; break;
		case 'C': cafile = optarg; break;
		case 'm': mda = optarg; break;
		case 'u': seen_path = optarg; break;
		case 'w': window = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'q': quiet = 1; break;
		default: die("usage: bench-rawpop [-p port] [-t -C cafile] [-m mda] [-u seenfile] [-w window] [-q] user:password ...");
		}
	}
	if (optind >= argc) die("no account given (user:password)");
	signal(SIGPIPE, SIG_IGN); /* an MDA that exits early must not kill us; pclose reports it */
	if (seen_path) load_seen();
	for (int i = optind; i < argc; i++) {
		char *sep = strchr(argv[i], ':');
		if (!sep) die("account %s: want user:password", argv[i]);
		*sep = 0;
		fetch_account(argv[i], sep + 1);
	}
	if (!quiet) fprintf(stderr, "bench-rawpop: %lld messages, %lld bytes\n", total_msgs, total_bytes);
	return 0;
}
