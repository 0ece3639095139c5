/*
 * dist: shoal as a node of an Erlang cluster, over erl_interface (libei). The gateway
 * (gateway.c) is a process of its own, forked and restarted by the supervisor (role
 * gateway); it registers the node with epmd, accepts distribution connections and bridges
 * messages to registered names into the agents' mailboxes. cookie.c reads the cookie file
 * (no libei needed: the config check uses it). Without libei (-Ddist=disabled) nodist.c
 * stands in and says so.
 */
#ifndef DIST_DIST_H
#define DIST_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIST_NODE_MAX	 256u /* alive@host, as libei's MAXNODELEN + 1 */
#define DIST_COOKIE_MAX	 256u /* the cookie's bytes, as libei's MAXATOMLEN + 1 */
#define DIST_PATH_MAX	 256u
#define DIST_ADDR_MAX	 64u
#define DIST_DEFAULT_TMO 5000 /* shoal send --node: connect and send within this many ms */

/* The [dist] section of the config (supervisor/config.c parses it). */
struct dist_conf {
	char node[DIST_NODE_MAX];	 /* alive@host (a long name); empty: no gateway */
	char cookie_file[DIST_PATH_MAX]; /* the cookie's file (mode 0600 or stricter) */
	char listen[DIST_ADDR_MAX];	 /* IPv4 address to listen on (default 127.0.0.1) */
	uint32_t port;			 /* port to listen on, 0: any */
	uint32_t ticktime_s;		 /* net_ticktime: a connection silent this long is closed */
	bool monitors;			 /* offer process monitors (erlang:monitor/2) to peers */
	int line;			 /* line of the section's first key, 0: no [dist] */
	int cookie_line;		 /* line of cookie_file, 0 none */
	int node_line;			 /* line of node, 0 none */
};

/*
 * Check that a whole term in the external term format starts at data + pos and ends within
 * len bytes, every length and count in it inside the buffer (dist/term_check.c): 0 and its
 * end in *end, or -EBADMSG (malformed, truncated, nested deeper than 256, compressed, or of
 * a kind ei cannot read safely). Call it before an ei decoder on bytes from outside: ei
 * trusts the lengths it reads. Pure; any thread.
 */
int dist_term_check(const void *data, uint32_t len, uint32_t pos, uint32_t *end);

/* Whether this shoal was built with libei (the gateway and shoal send --node work). */
bool dist_is_available(void);

/*
 * Read the cookie from path into out (cap bytes), refusing what Erlang refuses: a file that
 * is not a regular file, is not owned by this user, or that others or the group may read or
 * write (mode 0600 or stricter); an empty cookie; one longer than cap - 1 bytes. The trailing
 * newline is dropped. Returns 0, or -errno with a sentence naming the file and the fix in err.
 * Any thread.
 */
int dist_cookie_read(const char *path, char *out, size_t cap, char *err, size_t errlen);

/*
 * Check a node name: alive@host, alive of 1..255 of [A-Za-z0-9_-], host non-empty, the
 * whole under DIST_NODE_MAX bytes. Returns true when usable; else false with why in err.
 * Pure.
 */
bool dist_is_valid_node(const char *node, char *err, size_t errlen);

/*
 * The gateway process: run by the child the supervisor forked (supervisor/sup_gateway.c).
 * Reads the cookie, listens, registers with epmd (starting `epmd -daemon` if none runs),
 * attaches to instance as a process of role gateway, and serves connections until the
 * instance stops or it is killed. Returns the process's exit code (0 when the instance
 * stopped; 3 a setup failure, said on stderr). The gateway process's main thread only.
 */
int dist_gateway_main(const struct dist_conf *dc, const char *instance);

/*
 * Send from a short-lived C node: connect to node (alive@host) with the cookie in cookie_file
 * and send payload (a binary, len bytes) count times to the process registered as name
 * there, over one connection. Returns the messages sent (count), or -errno with a sentence in
 * err (-ECONNREFUSED: no such node, or it refused the cookie; -EINVAL/-EPERM: a bad name or
 * cookie file; -EIO: the connection failed midway). Any thread of a process without a
 * gateway.
 */
int dist_send(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, uint32_t count, int timeout_ms, char *err, size_t errlen);

/* What dist_call() got back. */
struct dist_reply {
	char *data; /* malloc'd: a binary's bytes, or another term printed as Erlang would */
	uint32_t len;
	bool term; /* the reply was not a binary: data is its printed form */
};

/*
 * A gen_server call from a short-lived C node: connect to node with the cookie in
 * cookie_file, send {'$gen_call', {Self, Ref}, Payload} (Payload a binary) to the process
 * registered as name there, and wait up to timeout_ms for {Ref, Reply}. Returns 0 with *out
 * filled (free out->data), -ETIMEDOUT (no reply: Erlang drops a message to a name that does
 * not exist), or -errno with a sentence in err as dist_send(). Any thread of a process
 * without a gateway.
 */
int dist_call(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, int timeout_ms, struct dist_reply *out, char *err, size_t errlen);

#endif
