/*
 * test_dist: shoal as an Erlang node ([dist], dist/gateway.c), against a real BEAM node
 * (Debian's erlang-nox) on 127.0.0.1: casts and gen_server calls from Erlang, a missing name,
 * a wrong cookie, malformed and oversized messages, the gateway SIGKILLed and restarted.
 * Skips (a TAP plan of 0, "# SKIP" and why) when shoal was built without libei or `erl` is
 * not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "shm/shm.h"
#include "shoal/client.h"
#include "shoal/term.h"

#include "tests/run_test_util.h"

#ifdef SHOAL_DIST
#include <ei.h>

/* The instance, its node and cookie, and the Erlang peer node driving it. */
static struct rt_run run;
static struct rt_client cl;
static char node[64], cookie_path[80];
static const char cookie[] = "shoaltestcookie";

/* A BEAM node reading commands on its stdin, answering one line each on its stdout. */
struct peer {
	pid_t pid;
	int in;	 /* its stdin */
	int out; /* its stdout */
	char buf[4096];
	size_t len; /* bytes of buf not yet taken as lines */
};
static struct peer peer;

/*
 * The peer's program (erl -eval): one command a line, one answer a line. `call` prints
 * "reply BYTES" for a binary reply, "timeout" when none came in time, "exit REASON".
 */
static const char peer_program[] =
	"N = list_to_atom(os:getenv(\"SHOAL_NODE\")),"
	/* exit signals from linked agents arrive as messages; dist/shoal.erl loaded */
	"process_flag(trap_exit, true),"
	"case os:getenv(\"SHOAL_TEST_ERL_SRC\") of false -> ok; Src ->"
	"  {ok, shoal, Bin} = compile:file(Src, [binary]),"
	"  {module, shoal} = code:load_binary(shoal, Src, Bin) end,"
	"P = fun(F, A) -> io:format(F ++ \"~n\", A) end,"
	"Call = fun(Name, Req, T) ->"
	"  case catch gen_server:call({list_to_atom(Name), N}, Req, T) of"
	"    {'EXIT', {timeout, _}} -> \"timeout\";"
	"    {'EXIT', {R, _}} -> io_lib:format(\"exit ~w\", [R]);"
	"    B when is_binary(B) -> \"reply \" ++ binary_to_list(B);"
	"    O -> io_lib:format(\"other ~w\", [O])"
	"  end end,"
	"Term = {t, [1, 2], <<\"b\">>},"
	"L = fun Loop() ->"
	"  case io:get_line(\"\") of"
	"    eof -> halt(0);"
	"    Line ->"
	"      case string:lexemes(string:trim(Line), \" \") of"
	"        [\"ping\"] -> P(\"ping ~w\", [net_adm:ping(N)]);"
	"        [\"register\", Name] -> register(list_to_atom(Name), self()),"
	"                                P(\"registered\", []);"
	"        [\"holdserver\", Name] ->"
	"          Hold = fun Ho() -> receive {'$gen_call', {F, T}, R} ->"
	"            receive release -> F ! {T, R} end, Ho() end end,"
	"          register(list_to_atom(Name), spawn(Hold)), P(\"registered\", []);"
	"        [\"release\", Name] -> list_to_atom(Name) ! release, P(\"released\", []);"
	"        [\"alive\", Name] -> W = whereis(list_to_atom(Name)),"
	"          P(\"alive ~w\", [is_pid(W) andalso is_process_alive(W)]);"
	"        [\"rpc\", Nd, M, F | As] -> P(\"rpc ~w\", [catch gen_server:call("
	"          {rex, list_to_atom(Nd)}, {call, list_to_atom(M), list_to_atom(F),"
	"          [list_to_atom(A) || A <- As], user}, 5000)]);"
	"        [\"forwarder\", Name] -> Me = self(),"
	"          Fwd = fun Fw() -> receive M -> Me ! M, Fw() end end,"
	"          register(list_to_atom(Name), spawn(Fwd)), P(\"registered\", []);"
	"        [\"voter\", Name, Ans] -> Me = self(),"
	"          Vo = fun V() -> receive {'$gen_call', {F, T}, {shoal_vote, VN, Val, _}} ->"
	"            Me ! {voted, VN, Val}, F ! {T, list_to_atom(Ans)}, V() end end,"
	"          register(list_to_atom(Name), spawn(Vo)), P(\"registered\", []);"
	"        [\"demander\", Name, Want] -> Me = self(),"
	"          De = fun D() -> receive"
	"            {'$gen_call', {F, T}, {shoal_demand, _, _}} ->"
	"              F ! {T, list_to_integer(Want)}, D();"
	"            {shoal_share, R, Sh, Dm, Cap} -> Me ! {share, R, Sh, Dm, Cap}, D() end end,"
	"          register(list_to_atom(Name), spawn(De)), P(\"registered\", []);"
	"        [\"waitshare\"] -> receive {share, R, Sh, Dm, Cap} ->"
	"            P(\"share ~s ~w ~w ~w\", [R, Sh, Dm, Cap]) after 10000 -> P(\"no share\", []) "
	"end;"
	"        [\"waitvar\"] -> receive {shoal_var, VN, Val, Ver} ->"
	"            P(\"var ~s ~w ~w\", [VN, Val, Ver]) after 10000 -> P(\"no var\", []) end;"
	"        [\"waitvote\"] -> receive {voted, VN, Val} -> P(\"voted ~s ~w\", [VN, Val])"
	"                          after 10000 -> P(\"no vote\", []) end;"
	"        [\"echoserver\", Name] ->"
	"          Srv = fun E() -> receive {'$gen_call', {F, T}, R} -> F ! {T, R}, E() end end,"
	"          register(list_to_atom(Name), spawn(Srv)), P(\"registered\", []);"
	"        [\"recv\"] -> receive B when is_binary(B) -> P(\"got ~s\", [B])"
	"                      after 10000 -> P(\"nothing\", []) end;"
	"        [\"monitor\"] -> erlang:monitor_node(N, true), P(\"monitoring\", []);"
	"        [\"waitdown\"] -> receive {nodedown, N} -> P(\"down\", [])"
	"                          after 15000 -> P(\"no nodedown\", []) end;"
	"        [\"idle\", Ms] -> receive {nodedown, N} -> P(\"down\", [])"
	"                          after list_to_integer(Ms) -> P(\"still up\", []) end;"
	"        [\"cast\", Name, Pay] -> {list_to_atom(Name), N} ! list_to_binary(Pay),"
	"                                 P(\"cast\", []);"
	"        [\"castterm\", Name] -> {list_to_atom(Name), N} ! Term, P(\"cast\", []);"
	"        [\"burst\", Name, K] -> [{list_to_atom(Name), N} ! <<\"m\">>"
	"                                  || _ <- lists:seq(1, list_to_integer(K))],"
	"                                 P(\"cast\", []);"
	"        [\"call\", Name, Pay] -> P(\"~s\", [Call(Name, list_to_binary(Pay), 5000)]);"
	"        [\"callshort\", Name, Pay] -> P(\"~s\", [Call(Name, list_to_binary(Pay), 300)]);"
	"        [\"callbig\", Name, Len] ->"
	"          P(\"~s\", [Call(Name, binary:copy(<<\"x\">>, list_to_integer(Len)), 300)]);"
	"        [\"callterm\", Name] ->"
	"          case catch gen_server:call({list_to_atom(Name), N}, Term, 5000) of"
	"            B when is_binary(B) ->"
	"              case catch binary_to_term(B) of Term -> P(\"term ok\", []);"
	"                X -> P(\"term bad ~w\", [X]) end;"
	"            O -> P(\"term other ~w\", [O])"
	"          end;"
	"        [\"whereis\", Name] -> W = shoal:whereis(list_to_atom(Name), N), put(pid, W),"
	"          P(\"whereis ~w\", [is_pid(W) andalso node(W) =:= N]);"
	"        [\"keep\"] -> put(old, get(pid)), P(\"kept\", []);"
	"        [\"useold\"] -> put(pid, get(old)), P(\"old\", []);"
	"        [\"samepid\"] -> P(\"~w\", [get(pid) =:= get(old)]);"
	"        [\"pidcall\", Pay] ->"
	"          P(\"~s\", [case catch gen_server:call(get(pid), list_to_binary(Pay), 5000) of"
	"            {'EXIT', {timeout, _}} -> \"timeout\";"
	"            {'EXIT', {R, _}} -> io_lib:format(\"exit ~w\", [R]);"
	"            B when is_binary(B) -> \"reply \" ++ binary_to_list(B);"
	"            O -> io_lib:format(\"other ~w\", [O]) end]);"
	"        [\"link\"] -> link(get(pid)), P(\"linked\", []);"
	"        [\"pidcast\", Pay] -> get(pid) ! list_to_binary(Pay), P(\"cast\", []);"
	"        [\"waitexit\"] -> Pid = get(pid),"
	"          receive {'EXIT', Pid, R} -> P(\"exit ~w\", [R])"
	"          after 10000 -> P(\"no exit\", []) end;"
	"        [\"mon\", Name] -> put(mon, shoal:monitor(process, {list_to_atom(Name), N})),"
	"          P(\"monitoring\", []);"
	"        [\"emon\", K, Name] -> put({emon, K}, erlang:monitor(process,"
	"          {list_to_atom(Name), N})), P(\"monitoring\", []);"
	"        [\"epidmon\", K] -> put({emon, K}, erlang:monitor(process, get(pid))),"
	"          P(\"monitoring\", []);"
	"        [\"edemon\", K] -> P(\"~w\", [erlang:demonitor(get({emon, K}))]);"
	"        [\"waitemon\", K] -> Ref = get({emon, K}),"
	"          receive {'DOWN', Ref, process, _, R} -> P(\"down ~w\", [R])"
	"          after 10000 -> P(\"no down\", []) end;"
	"        [\"hasemon\", K] -> Ref = get({emon, K}),"
	"          receive {'DOWN', Ref, process, _, R} -> P(\"down ~w\", [R])"
	"          after 0 -> P(\"no down\", []) end;"
	"        [\"kill\", Name] -> exit(whereis(list_to_atom(Name)), kill), P(\"killed\", []);"
	"        [\"waitmon\"] -> Ref = get(mon),"
	"          receive {'DOWN', Ref, process, _, R} -> P(\"down ~w\", [R])"
	"          after 10000 -> P(\"no down\", []) end;"
	"        [\"anycall\", Name, What] ->"
	"          Req = case What of \"tuple\" -> {7, seven}; \"list\" -> [1, 2];"
	"                  \"ints\" -> [1000, -5, 3]; \"nil\" -> []; \"improper\" -> [1 | 2];"
	"                  \"map\" -> #{b => 1, a => [x]}; \"badmap\" -> #{1 => 2};"
	"                  _ -> list_to_binary(What) end,"
	"          P(\"~w\", [catch gen_server:call({list_to_atom(Name), N}, Req, 5000)]);"
	"        Other -> P(\"unknown ~p\", [Other])"
	"      end,"
	"      Loop()"
	"  end end,"
	"L().";

/*
 * Start `erl` as node alive@127.0.0.1 with cookie c, running peer_program; ticktime > 0 sets
 * its net_ticktime (seconds).
 */
static void peer_start_tick(struct peer *p, const char *alive, const char *c, int ticktime)
{
	int in[2], out[2];
	char name[64];

	memset(p, 0, sizeof(*p));
	snprintf(name, sizeof(name), "%s@127.0.0.1", alive);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		setenv("SHOAL_NODE", node, 1);
		if (ticktime > 0) {
			char tt[16];

			snprintf(tt, sizeof(tt), "%d", ticktime);
			execlp("erl", "erl", "-noshell", "-name", name, "-setcookie", c, "-kernel",
			       "net_ticktime", tt, "-eval", peer_program, (char *)NULL);
		}
		execlp("erl", "erl", "-noshell", "-name", name, "-setcookie", c, "-eval",
		       peer_program, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
}

static void peer_start(struct peer *p, const char *alive, const char *c)
{
	peer_start_tick(p, alive, c, 0);
}

/* The peer's next line (without its newline) into line; fails the test after TIMEOUT_MS. */
static void peer_line(struct peer *p, char *line, size_t cap)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		ssize_t n;

		if (nl) {
			size_t k = (size_t)(nl - p->buf);

			snprintf(line, cap, "%.*s", (int)k, p->buf);
			memmove(p->buf, nl + 1, p->len - k - 1);
			p->len -= k + 1;
			return;
		}
		if (shm_now_ns() >= dl)
			fail_msg("no answer from the Erlang node in %d ms", TIMEOUT_MS);
		if (!rt_fd_wait(p->out, (int)((dl - shm_now_ns()) / 1000000u) + 1))
			continue;
		assert_true(p->len < sizeof(p->buf) - 1);
		n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n <= 0)
			fail_msg("the Erlang node exited (is erlang-nox whole?)");
		p->len += (size_t)n;
	}
}

/* Send the peer command cmd; its answer must be want. */
static void peer_expect(struct peer *p, const char *cmd, const char *want)
{
	char line[512];

	assert_true(write(p->in, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
	assert_true(write(p->in, "\n", 1) == 1);
	peer_line(p, line, sizeof(line));
	if (strcmp(line, want))
		fail_msg("Erlang answered '%s' to '%s', want '%s'", line, cmd, want);
}

/* Close the peer's stdin (it halts) and collect it. */
static void peer_stop(struct peer *p)
{
	int pidfd;

	if (!p->pid)
		return;
	close(p->in);
	pidfd = rt_pidfd_open(p->pid);
	if (pidfd < 0 || !rt_fd_wait(pidfd, TIMEOUT_MS))
		kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	if (pidfd >= 0)
		close(pidfd);
	close(p->out);
	p->pid = 0;
}

/* The running gateway's pid in the instance's process table, 0 if none runs. */
static pid_t gateway_pid(struct shm_seg *seg)
{
	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_procs; i++) {
		struct shm_proc *p = shm_proc_at(seg, i);

		if (atomic_load(&p->role) == SHM_ROLE_GATEWAY &&
		    atomic_load(&p->state) == SHM_PROC_RUNNING)
			return rt_slot_pid(seg, i);
	}
	return 0;
}

static int is_on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[512];

	while (path && *path) {
		const char *e = strchr(path, ':');
		size_t n = e ? (size_t)(e - path) : strlen(path);

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return 1;
		path = e ? e + 1 : NULL;
	}
	return 0;
}

/* The instance with [dist], its gateway running, and the Erlang peer connected. */
static int setup(void **state)
{
	char cfg[1024];
	FILE *f;

	(void)state;
	snprintf(node, sizeof(node), "shoal%d@127.0.0.1", (int)getpid());
	snprintf(cookie_path, sizeof(cookie_path), "/tmp/shoal-t-dist-cookie-%d", (int)getpid());
	f = fopen(cookie_path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", cookie);
	fclose(f);
	assert_int_equal(chmod(cookie_path, 0600), 0);
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\n"
		 "[agent echo]\ntype = echo\nname = echo\n"
		 "[agent counter]\ntype = counter\nname = counter\n"
		 "[types]\nload = %s\n[agent termy]\ntype = termy\nname = termy\n"
		 "[agent rounder]\ntype = rounder\nname = rounder\n"
		 "[dist]\nnode = %s\ncookie_file = %s\n",
		 getenv("SHOAL_TEST_PLUGIN"), node, cookie_path);
	/*
	 * This instance's gateway forgets an unanswered call after 200 ms, not 10 minutes (test
	 * hooks); only this one: shoal bench dist and the second instances keep the real
	 * lifetime, or a call slowed past 200 ms on a loaded machine would be forgotten.
	 */
	setenv("SHOAL_TEST_DIST_CALL_TTL_MS", "200", 1);
	rt_start(&run, "t-dist-", "gw", cfg, NULL);
	unsetenv("SHOAL_TEST_DIST_CALL_TTL_MS");
	rt_wait_ready(&run);
	rt_client_open(&cl, run.inst);
	WAIT_FOR(cl.seg, gateway_pid(cl.seg) != 0);
	peer_start(&peer, "tpeer", cookie);
	peer_expect(&peer, "ping", "ping pong");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	peer_stop(&peer);
	rt_client_close(&cl);
	rt_stop(&run);
	unlink(cookie_path);
	return 0;
}

/* Casts from Erlang reach the agent (a binary and a term), in order before a later call. */
static void test_dist_cast_reaches_agent(void **state)
{
	(void)state;
	peer_expect(&peer, "cast counter a", "cast");
	peer_expect(&peer, "cast counter b", "cast");
	peer_expect(&peer, "castterm counter", "cast");
	/* the counter answers "count redelivered"; calls are not counted */
	peer_expect(&peer, "call counter x", "reply 3 0");
}

/*
 * A burst of casts larger than the agent's mailbox loses none: the gateway stops reading
 * that connection while the mailbox is full (the sender's node buffers, as for any slow
 * peer) instead of dropping what does not fit.
 */
static void test_dist_cast_burst_not_dropped(void **state)
{
	char line[512], want[64];
	unsigned long n0, r0;

	(void)state;
	assert_true(write(peer.in, "call counter x\n", 15) == 15);
	peer_line(&peer, line, sizeof(line));
	assert_int_equal(sscanf(line, "reply %lu %lu", &n0, &r0), 2);
	/* 20 mailboxes' worth (256 cells each by default) */
	peer_expect(&peer, "burst counter 5000", "cast");
	snprintf(want, sizeof(want), "reply %lu %lu", n0 + 5000, r0);
	peer_expect(&peer, "call counter x", want);
}

/* gen_server:call gets the echo agent's reply as a binary; a term arrives as its bytes. */
static void test_dist_call_echo(void **state)
{
	(void)state;
	peer_expect(&peer, "call echo hello", "reply hello");
	peer_expect(&peer, "callterm echo", "term ok");
}

/*
 * An agent answering with a term (shoal/term.h, shoal_reply_as_term()): the Erlang caller
 * gets the term itself, built from a binary request or read from a term request.
 */
static void test_dist_call_term_reply(void **state)
{
	(void)state;
	peer_expect(&peer, "anycall termy hi", "{ok,<<104,105>>}");
	peer_expect(&peer, "anycall termy tuple", "{ok,{7,seven}}");
	/* lists and maps, read and written with shoal/term.h (API 1.3) */
	peer_expect(&peer, "anycall termy list", "{ok,#{count => 2,sum => 3}}");
	peer_expect(&peer, "anycall termy ints", "{ok,#{count => 3,sum => 998}}");
	peer_expect(&peer, "anycall termy nil", "{ok,#{count => 0,sum => 0}}");
	peer_expect(&peer, "anycall termy map", "{ok,[a,b]}");
	peer_expect(&peer, "anycall termy improper", "{error,badarg}");
	peer_expect(&peer, "anycall termy badmap", "{error,badarg}");
	/* an agent that does not mark its reply: a binary, as before */
	peer_expect(&peer, "anycall echo hi", "<<104,105>>");
}

/*
 * A name that does not exist: the call's monitor fires noproc at once, so the call exits
 * noproc, as a call to a name nobody has on a BEAM node does; the message is dropped.
 */
static void test_dist_call_missing_name(void **state)
{
	(void)state;
	/* a call with time to spare (5 s): noproc must come from the monitor, not a timeout
	 * that a loaded machine stretches past a short call's */
	peer_expect(&peer, "call nobody x", "exit noproc");
	rt_wait_err(&run, "to 'nobody' dropped: no agent of that name");
	peer_expect(&peer, "call echo still", "reply still");
}

/*
 * A message larger than the instance's max message is rejected and said; nothing crashes.
 * One far larger (past what the gateway buffers: max message and 64 KiB) is read past, in
 * pieces as it comes, and the messages after it on the connection are read as before.
 */
static void test_dist_oversized_rejected(void **state)
{
	pid_t gw = gateway_pid(cl.seg);

	(void)state;
	peer_expect(&peer, "callbig echo 5000", "timeout");
	rt_wait_err(&run, "rejected: 5000 bytes, more than the instance's max message (4096");
	peer_expect(&peer, "call echo after", "reply after");
	peer_expect(&peer, "callbig echo 3000000", "timeout");
	rt_wait_err(&run, "more than the instance's max message (4096 bytes, [segment] "
			  "max_message): read past");
	peer_expect(&peer, "call echo after-big", "reply after-big");
	assert_int_equal(gateway_pid(cl.seg), gw);
}

/* A malformed term (sent raw by a C node) is rejected and said; the gateway goes on. */
static void test_dist_malformed_rejected(void **state)
{
	/* a tuple of 5 elements that ends after its header */
	char bad[] = {(char)131, 'h', 5};
	pid_t gw = gateway_pid(cl.seg);
	ei_cnode ec;
	char self[32], target[64];
	int fd;

	(void)state;
	assert_int_equal(ei_init(), 0);
	snprintf(self, sizeof(self), "tbad%d", (int)getpid());
	assert_true(ei_connect_init(&ec, self, cookie, 0) >= 0);
	snprintf(target, sizeof(target), "%s", node);
	fd = ei_connect_tmo(&ec, target, TIMEOUT_MS);
	assert_true(fd >= 0);
	assert_int_equal(ei_reg_send(&ec, fd, "echo", bad, sizeof(bad)), 0);
	rt_wait_err(&run, "to 'echo' rejected: a malformed term");
	/*
	 * A control message too short for its operation, written raw: a REG_SEND {6, From,
	 * Cookie} without its name, then a message. Ignored and said; the connection goes on:
	 * a cast after it on the same connection arrives.
	 */
	{
		ei_x_buff x;
		uint32_t n;
		int64_t before = atomic_load(&shm_proc_at(cl.seg, 1)->restarts);

		assert_int_equal(ei_x_new(&x), 0);
		ei_x_append_buf(&x, "\0\0\0\0p", 5);
		ei_x_encode_version(&x);
		ei_x_encode_tuple_header(&x, 3);
		ei_x_encode_long(&x, ERL_REG_SEND);
		ei_x_encode_pid(&x, ei_self(&ec));
		ei_x_encode_atom(&x, "");
		ei_x_encode_version(&x);
		ei_x_encode_binary(&x, "lost", 4);
		n = htonl((uint32_t)x.index - 4);
		memcpy(x.buff, &n, 4);
		assert_int_equal(write(fd, x.buff, (size_t)x.index), x.index);
		ei_x_free(&x);
		rt_wait_err(&run, "(operation 6) from tbad");
		assert_int_equal(ei_reg_send(&ec, fd, "counter", bad, sizeof(bad)), 0);
		rt_wait_err(&run, "to 'counter' rejected: a malformed term");
		assert_int_equal(atomic_load(&shm_proc_at(cl.seg, 1)->restarts), before);
	}
	ei_close_connection(fd);
	peer_expect(&peer, "call echo fine", "reply fine");
	assert_int_equal(gateway_pid(cl.seg), gw);
}

/*
 * A call whose agent never answers (its worker stopped) is forgotten after the gateway's
 * call lifetime (200 ms here, SHOAL_TEST_DIST_CALL_TTL_MS): the in-flight table does not
 * fill with them. The late reply is dropped; the agent answers the next call.
 */
static void test_dist_unanswered_call_expires(void **state)
{
	pid_t wpid = rt_slot_pid(cl.seg, 1);

	(void)state;
	need_test_hooks();
	assert_true(wpid > 0);
	assert_int_equal(kill(wpid, SIGSTOP), 0);
	rt_wait_pid_state(wpid, 'T');
	peer_expect(&peer, "callshort echo late", "timeout");
	rt_wait_err(&run, "call from tpeer@127.0.0.1 to 'echo': no reply in 200 ms: forgotten");
	assert_int_equal(kill(wpid, SIGCONT), 0);
	peer_expect(&peer, "call echo ontime", "reply ontime");
}

/*
 * Distribution ticks are answered: a BEAM node with a 2 s net tick time (it gives up on a
 * peer silent for about that long) stays connected through 5 s of an idle connection.
 */
static void test_dist_ticks_answered(void **state)
{
	struct peer fast;

	(void)state;
	peer_start_tick(&fast, "ttick", cookie, 2);
	peer_expect(&fast, "ping", "ping pong");
	peer_expect(&fast, "monitor", "monitoring");
	peer_expect(&fast, "idle 5000", "still up");
	peer_expect(&fast, "call echo alive", "reply alive");
	peer_stop(&fast);
}

/* A node with another cookie is refused in the handshake. */
static void test_dist_wrong_cookie_refused(void **state)
{
	struct peer bad;

	(void)state;
	peer_start(&bad, "tbadcookie", "notthecookie");
	peer_expect(&bad, "ping", "ping pang");
	peer_stop(&bad);
	rt_wait_err(&run, "refused in the handshake");
}

/* shoal send --node: a message to a process registered on the BEAM node arrives. */
static void test_dist_send_to_beam(void **state)
{
	const char *args[] = {
		"send",		 "shoalrecv", "from-shoal", "--node", "tpeer@127.0.0.1",
		"--cookie-file", cookie_path, NULL};
	char out[1024];

	(void)state;
	peer_expect(&peer, "register shoalrecv", "registered");
	if (rt_run_tool(NULL, out, sizeof(out), args) != 0)
		fail_msg("shoal send --node failed: %s", out);
	assert_non_null(strstr(out, "shoalrecv on tpeer@127.0.0.1: sent 1"));
	peer_expect(&peer, "recv", "got from-shoal");
}

/*
 * shoal send --node to an instance's own gateway: casts to its agent through the
 * distribution (two nodes of shoal's talk); a wrong cookie file is refused.
 */
static void test_dist_send_to_shoal_node(void **state)
{
	const char *args[] = {"send",	       "counter",   "x",       "--node", node,
			      "--cookie-file", cookie_path, "--count", "2",	 NULL};
	const char *noc[] = {"send", "counter", "x", "--node", node, NULL};
	char out[1024], before[128], after[64], line[512];
	unsigned long n0, r0;

	(void)state;
	assert_true(write(peer.in, "call counter x\n", 15) == 15);
	peer_line(&peer, line, sizeof(line));
	assert_int_equal(sscanf(line, "reply %lu %lu", &n0, &r0), 2);
	if (rt_run_tool(NULL, out, sizeof(out), args) != 0)
		fail_msg("shoal send --node failed: %s", out);
	snprintf(before, sizeof(before), "counter on %s: sent 2", node);
	assert_non_null(strstr(out, before));
	/*
	 * Two connections are not ordered with each other: once the gateway has seen the tool's
	 * connection end, it has put both casts in the mailbox, ahead of the peer's call.
	 */
	rt_wait_err(&run, "connection from shoal_cli_");
	snprintf(after, sizeof(after), "reply %lu %lu", n0 + 2, r0);
	peer_expect(&peer, "call counter x", after);
	assert_int_equal(rt_run_tool(NULL, out, sizeof(out), noc), 2);
	assert_non_null(strstr(out, "--node needs --cookie-file"));
}

/* shoal bench dist runs (its own instances and BEAM nodes) and reports its six rows. */
static void test_dist_bench_runs(void **state)
{
	const char *args[] = {"bench", "dist", "--quick", "--json", NULL};
	const char *rows[] = {"dist_call_beam_to_shoal",  "dist_call_beam_to_beam",
			      "dist_cast_beam_to_shoal",  "dist_cast_beam_to_beam",
			      "dist_call_shoal_to_shoal", "dist_cast_shoal_to_beam"};
	static char out[65536];

	(void)state;
	if (rt_run_tool(NULL, out, sizeof(out), args) != 0)
		fail_msg("shoal bench dist failed:\n%s", out);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (!strstr(out, rows[i]))
			fail_msg("no row %s in:\n%s", rows[i], out);
	/* the notes say how the instances ran (--no-monitors would say no) */
	if (!strstr(out, "monitors = yes (gen_server:call monitors"))
		fail_msg("the notes do not say the instances' monitors setting:\n%s", out);
}

/*
 * shoal call --node: a gen_server call from a short-lived C node, to a BEAM process (its
 * reply printed) and to the instance's own agent through its gateway (shoal to shoal); a
 * name nobody has times out (exit 1).
 */
static void test_dist_call_node(void **state)
{
	const char *beam[] = {"call",	       "becho",	    "hi-beam", "--node", "tpeer@127.0.0.1",
			      "--cookie-file", cookie_path, NULL};
	const char *own[] = {"call", "echo",	      "hi-shoal",  "--node",
			     node,   "--cookie-file", cookie_path, NULL};
	const char *none[] = {"call",	       "nobody",    "x",	 "--node", node,
			      "--cookie-file", cookie_path, "--timeout", "300",	   NULL};
	char out[1024];

	(void)state;
	peer_expect(&peer, "echoserver becho", "registered");
	if (rt_run_tool(NULL, out, sizeof(out), beam) != 0)
		fail_msg("shoal call --node (BEAM) failed: %s", out);
	assert_string_equal(out, "hi-beam\n");
	if (rt_run_tool(NULL, out, sizeof(out), own) != 0)
		fail_msg("shoal call --node (shoal) failed: %s", out);
	assert_string_equal(out, "hi-shoal\n");
	assert_int_equal(rt_run_tool(NULL, out, sizeof(out), none), 1);
	assert_non_null(strstr(out, "'nobody' on "));
	assert_non_null(strstr(out, "did not answer within 300 ms"));
}

/*
 * [dist] net_ticktime: a peer that stops sending (SIGSTOP: not even its ticks) has its
 * connection closed once it has been silent that long, and a live one with the same
 * ticktime, idle, is kept. A second instance, with net_ticktime = 2, and a peer with the
 * same. That instance also says monitors = no: its node offers none.
 */
static void test_dist_silent_peer_closed(void **state)
{
	char cfg[1024], saved[sizeof(node)];
	struct rt_run run2;
	struct peer p;

	(void)state;
	memcpy(saved, node, sizeof(node));
	snprintf(node, sizeof(node), "shoaltt%d@127.0.0.1", (int)getpid());
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\n[agent echo]\ntype = echo\nname = echo\n"
		 "[dist]\nnode = %s\ncookie_file = %s\nnet_ticktime = 2\nmonitors = no\n",
		 node, cookie_path);
	rt_start(&run2, "t-dist-", "tt", cfg, NULL);
	rt_wait_ready(&run2);
	peer_start_tick(&p, "tttick", cookie, 2);
	peer_expect(&p, "ping", "ping pong");
	/* monitors = no: a node that offers none, as a plain C node; a call to a name nobody
	 * has waits for its timeout (with monitors it exits noproc at once) */
	peer_expect(&p, "callshort nobody x", "timeout");
	/* idle, ticking: kept (5 s, two and a half ticktimes) */
	peer_expect(&p, "idle 5000", "still up");
	peer_expect(&p, "call echo alive", "reply alive");
	kill(p.pid, SIGSTOP);
	rt_wait_err(&run2, "tttick@127.0.0.1 closed: silent for");
	kill(p.pid, SIGCONT);
	peer_stop(&p);
	rt_stop(&run2);
	memcpy(node, saved, sizeof(node));
}

/*
 * shoal run --node NODE --cookie-file FILE: the command line's [dist], checked the same way:
 * a cookie file the group may read is refused (exit 2, naming it), a good one passes.
 */
static void test_dist_run_node_options(void **state)
{
	char bad[96], out[8192];
	const char *args[] = {"run",	       "--check",	"--workers", "1", "--node",
			      "cli@127.0.0.1", "--cookie-file", bad,	     NULL};
	const char *nocookie[] = {"run",    "--check",	     "--workers", "1",
				  "--node", "cli@127.0.0.1", NULL};
	const char *badnode[] = {"run", "--check", "--node", "cli", NULL};
	FILE *f;

	(void)state;
	snprintf(bad, sizeof(bad), "%s-0640", cookie_path);
	f = fopen(bad, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", cookie);
	fclose(f);
	assert_int_equal(chmod(bad, 0640), 0);
	assert_int_equal(rt_run_tool(NULL, out, sizeof(out), args), 2);
	if (!strstr(out, "has mode 0640") || !strstr(out, bad))
		fail_msg("shoal run --check said: %s", out);
	assert_int_equal(chmod(bad, 0600), 0);
	if (rt_run_tool(NULL, out, sizeof(out), args) != 0)
		fail_msg("shoal run --check refused a 0600 cookie: %s", out);
	assert_non_null(strstr(out, "dist: node cli@127.0.0.1"));
	assert_int_equal(rt_run_tool(NULL, out, sizeof(out), nocookie), 2);
	assert_non_null(strstr(out, "the cookie is required"));
	assert_int_equal(rt_run_tool(NULL, out, sizeof(out), badnode), 2);
	assert_non_null(strstr(out, "--node 'cli': a node name is alive@host"));
	unlink(bad);
}

/* shoal inspect lists the gateway's process slot with its role. */
/* Whether the gateway's telemetry block shows the peer's connection and its traffic. */
static bool dist_flushed(struct shm_seg *seg, struct shm_telem *t)
{
	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_procs; i++)
		if (atomic_load(&shm_proc_at(seg, i)->role) == SHM_ROLE_GATEWAY &&
		    atomic_load(&shm_proc_at(seg, i)->state) == SHM_PROC_RUNNING)
			return shm_telem_read(seg, i, t) == 0 && t->dist_conns >= 1 &&
			       t->dist_in > 0 && t->dist_out > 0 && t->dist_dropped > 0;
	return false;
}

/* Whether the distribution table names our node and lists peer `who` with traffic in. */
static bool dist_lists(struct shm_seg *seg, const char *who, struct shm_dist *d)
{
	if (shm_dist_read(seg, d) || strcmp(d->node, node))
		return false;
	for (uint32_t i = 0; i < d->nconns; i++)
		if (!strcmp(d->conns[i].node, who) && d->conns[i].in > 0 && d->conns[i].out > 0)
			return true;
	return false;
}

/*
 * inspect lists the gateway among the processes, and its figures (connections, traffic,
 * drops: the earlier tests made some of each) in inspect, inspect --json and metrics; the
 * node's name and each connected node with its own traffic (the distribution table).
 */
static void test_dist_inspect_shows_gateway(void **state)
{
	const char *args[] = {"inspect", NULL}, *jargs[] = {"inspect", "--json", NULL};
	const char *margs[] = {"metrics", "--once", NULL};
	static char out[1 << 18];
	char want[160], *line;
	unsigned conns = 0, links = 0, calls = 0, stalled = 0;
	unsigned long long in = 0, sent = 0, dropped = 0, pin = 0, pout = 0;
	struct shm_telem t;
	struct shm_dist d;

	(void)state;
	WAIT_FOR(cl.seg, dist_flushed(cl.seg, &t));
	WAIT_FOR(cl.seg, dist_lists(cl.seg, "tpeer@127.0.0.1", &d));
	assert_int_equal(rt_run_tool(run.inst, out, sizeof(out), args), 0);
	snprintf(want, sizeof(want), "gateway    running %8d", (int)gateway_pid(cl.seg));
	if (!strstr(out, want))
		fail_msg("inspect does not list '%s':\n%s", want, out);
	line = strstr(out, "distribution   gateway slot");
	if (!line ||
	    sscanf(strchr(line, ':') + 1,
		   " %u %*s %u %*s %u %*s in flight, %u stalled on a full mailbox; %llu in, "
		   "%llu out, %llu dropped",
		   &conns, &links, &calls, &stalled, &in, &sent, &dropped) != 7)
		fail_msg("inspect has no distribution line it should:\n%s", out);
	assert_true(conns >= 1);
	assert_true(in >= t.dist_in && sent >= t.dist_out && dropped >= t.dist_dropped);
	/* the node, and the peer's connection with its own traffic */
	snprintf(want, sizeof(want), "node           %s (gateway pid %d", node,
		 (int)gateway_pid(cl.seg));
	if (!strstr(out, want))
		fail_msg("inspect does not show '%s':\n%s", want, out);
	line = strstr(out, "  tpeer@127.0.0.1 ");
	{
		char one[256];
		uint64_t was = 0;

		if (!line)
			fail_msg("inspect does not list the peer's connection:\n%s", out);
		snprintf(one, sizeof(one), "%.*s", (int)strcspn(line, "\n"), line);
		if (!strstr(one, " it connected, up ") ||
		    sscanf(strchr(one, ':') + 1, " %llu in, %llu out", &pin, &pout) != 2)
			fail_msg("inspect's line for the peer's connection is not whole: %s", one);
		/* counters since the connection only grow: at least what the table said */
		for (uint32_t i = 0; i < d.nconns; i++)
			if (!strcmp(d.conns[i].node, "tpeer@127.0.0.1"))
				was = d.conns[i].in;
		assert_true(was >= 1 && pin >= was && pout >= 1);
	}
	assert_int_equal(rt_run_tool(run.inst, out, sizeof(out), jargs), 0);
	if (!strstr(out, "\"dist\": {") || !strstr(out, "\"connections\": "))
		fail_msg("inspect --json has no gateway 'dist' object:\n%.4000s", out);
	snprintf(want, sizeof(want), "\"node\": \"%s\"", node);
	line = strstr(out, "\"distribution\": {");
	if (!line || !strstr(line, want) || !strstr(line, "\"node\": \"tpeer@127.0.0.1\"") ||
	    !strstr(line, "\"messages_in\": "))
		fail_msg("inspect --json has no distribution table with the peer:\n%.4000s", line);
	assert_int_equal(rt_run_tool(run.inst, out, sizeof(out), margs), 0);
	if (!strstr(out, "\nshoal_dist_connections ") ||
	    !strstr(out, "\nshoal_dist_messages_in_total ") ||
	    !strstr(out, "\nshoal_dist_dropped_total "))
		fail_msg("metrics has no shoal_dist_* figures:\n%.4000s", out);
	snprintf(want, sizeof(want), "\nshoal_dist_node_info{node=\"%s\"} 1\n", node);
	line = strstr(out, "\nshoal_dist_peer_messages_in_total{peer=\"tpeer@127.0.0.1\","
			   "direction=\"in\"} ");
	if (!strstr(out, want) || !line || strtoull(strchr(line, '}') + 1, NULL, 10) < 1)
		fail_msg("metrics has no node or per-peer figures:\n%.6000s", out);
}

/*
 * Agents' pids, links and monitors: the pid shoal:whereis/2 gives answers calls; a process
 * linked to it, a shoal:monitor/2 of it, and erlang:monitor/2 of its name and of its pid get
 * the exit signal or 'DOWN' (killed) when the agent's worker is SIGKILLed, and a monitor
 * removed with erlang:demonitor/1 gets none; a monitor of a name nobody has is DOWN noproc
 * at once. The restarted agent has a new pid, which answers; the old pid is dead (a call to
 * it exits noproc, its message dropped; a link or a monitor of it gets noproc).
 */
static void test_dist_pid_link_monitor(void **state)
{
	pid_t victim = rt_slot_pid(cl.seg, 1);
	uint32_t r0 = atomic_load(&shm_proc_at(cl.seg, 1)->restarts);

	(void)state;
	assert_true(victim > 0);
	peer_expect(&peer, "whereis echo", "whereis true");
	peer_expect(&peer, "pidcall hello", "reply hello");
	peer_expect(&peer, "whereis nobody", "whereis false");
	peer_expect(&peer, "whereis echo", "whereis true");
	peer_expect(&peer, "keep", "kept");
	peer_expect(&peer, "link", "linked");
	peer_expect(&peer, "mon echo", "monitoring");
	/* the one demonitored first: a DOWN it wrongly kept would come before the others' */
	peer_expect(&peer, "emon gone echo", "monitoring");
	peer_expect(&peer, "emon byname echo", "monitoring");
	peer_expect(&peer, "epidmon bypid", "monitoring");
	peer_expect(&peer, "emon none nobody", "monitoring");
	peer_expect(&peer, "waitemon none", "down noproc");
	peer_expect(&peer, "edemon gone", "true");
	rt_kill_and_wait(victim);
	peer_expect(&peer, "waitexit", "exit killed");
	peer_expect(&peer, "waitmon", "down killed");
	peer_expect(&peer, "waitemon byname", "down killed");
	peer_expect(&peer, "waitemon bypid", "down killed");
	peer_expect(&peer, "hasemon gone", "no down");
	WAIT_FOR(cl.seg, atomic_load(&shm_proc_at(cl.seg, 1)->restarts) > r0 &&
				 atomic_load(&shm_proc_at(cl.seg, 1)->state) == SHM_PROC_RUNNING);
	peer_expect(&peer, "whereis echo", "whereis true");
	peer_expect(&peer, "samepid", "false");
	peer_expect(&peer, "pidcall again", "reply again");
	/* the old incarnation's pid: dead */
	peer_expect(&peer, "useold", "old");
	peer_expect(&peer, "pidcall lost", "exit noproc");
	rt_wait_err(&run, "dropped: no live agent incarnation has that pid");
	peer_expect(&peer, "link", "linked");
	peer_expect(&peer, "waitexit", "exit noproc");
	peer_expect(&peer, "epidmon old", "monitoring");
	peer_expect(&peer, "waitemon old", "down noproc");
}

/*
 * The exit reasons of the other ends of an incarnation: a callback that fails ('error', the
 * agent restarts under a new pid) and an orderly stop ('normal').
 */
static void test_dist_link_reasons(void **state)
{
	const char *spawn[] = {"spawn", "crasher", "cr", "--wait", NULL};
	const char *stop[] = {"stop", "cr", "--wait", NULL};
	char out[4096];

	(void)state;
	if (rt_run_tool(run.inst, out, sizeof(out), spawn) != 0)
		fail_msg("shoal spawn crasher cr: %s", out);
	peer_expect(&peer, "whereis cr", "whereis true");
	peer_expect(&peer, "link", "linked");
	peer_expect(&peer, "pidcast fail", "cast");
	peer_expect(&peer, "waitexit", "exit error");
	peer_expect(&peer, "whereis cr", "whereis true");
	peer_expect(&peer, "link", "linked");
	if (rt_run_tool(run.inst, out, sizeof(out), stop) != 0)
		fail_msg("shoal stop cr: %s", out);
	peer_expect(&peer, "waitexit", "exit normal");
}

/*
 * The gateway SIGKILLed: the Erlang node sees the node go down, the supervisor starts a new
 * gateway, and the next call from Erlang connects again and is answered.
 */
/* The next DOWN notice in client c's inbox (other messages skipped); fails after TIMEOUT_MS. */
static struct shoal_down next_down_at(struct shoal_client *c, int line)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	struct shoal_down d;
	struct shoal_msg m;
	char buf[256];

	for (;;) {
		int r = shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS);

		if (r < 0 || shm_now_ns() > dl)
			fail_msg("no DOWN notice for line %d (%d)", line, r);
		if ((m.flags & SHOAL_MSG_SYSTEM) && m.type == SHOAL_T_DOWN && m.len >= sizeof(d)) {
			memcpy(&d, buf, sizeof(d));
			return d;
		}
	}
}
#define next_down(c) next_down_at((c), __LINE__)

/*
 * Remote handles (shoal_client_remote()): a shoal client casts to a process registered on
 * the BEAM node and calls a gen_server there (a binary, and a term typed SHOAL_TYPE_TERM),
 * through the gateway; one handle per name and node. A node that runs nowhere: its
 * handle's monitor gets DOWN noconnection. The BEAM node gone: so do its handles' monitors,
 * and the next lookup makes a new handle that reaches the node once it is back.
 */
static void test_dist_remote_handles(void **state)
{
	static const unsigned char ok42[] = {131, 104, 2, 100, 0, 2, 'o', 'k', 97, 42};
	struct shoal_client *c;
	shoal_handle_t h, again, sink, nowhere;
	uint64_t mref, nref;
	struct shoal_down d;
	char err[256], reply[64], atom[8];
	struct shoal_term_in in;
	uint32_t arity;
	int64_t v;
	int n, r;

	(void)state;
	peer_expect(&peer, "echoserver recho", "registered");
	peer_expect(&peer, "forwarder rsink", "registered");
	assert_int_equal(shoal_client_open(run.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "recho", &h), 0);
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "recho", &again), 0);
	assert_true(again == h);
	assert_int_equal(shoal_client_call(c, h, 1, "ping", 4, reply, sizeof(reply), TIMEOUT_MS),
			 4);
	assert_memory_equal(reply, "ping", 4);
	/* the echo server answers the request itself: the term comes back (as the node encodes
	 * it: its atoms in UTF-8) */
	n = shoal_client_call(c, h, SHOAL_TYPE_TERM, ok42, sizeof(ok42), reply, sizeof(reply),
			      TIMEOUT_MS);
	/* re-encoded by the node (ok as a small UTF-8 atom, 119): a term went, not a binary */
	assert_int_equal(n, 9);
	assert_int_equal((unsigned char)reply[3], 119);
	assert_int_equal(shoal_term_in_init(&in, reply, (uint32_t)n), 0);
	assert_int_equal(shoal_term_get_tuple(&in, &arity), 0);
	assert_int_equal(arity, 2);
	assert_int_equal(shoal_term_get_atom(&in, atom, sizeof(atom)), 0);
	assert_string_equal(atom, "ok");
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, 42);
	/*
	 * A reply held past the lifetime this instance gives calls into it (the test hook's
	 * 200 ms): a call out is kept for its own lifetime, not that one. The server holds its
	 * answer until told; meanwhile a call into shoal, made after ours, goes unanswered (its
	 * worker stopped) until the gateway says it forgot it: the sweep that forgets calls past
	 * 200 ms has run over ours too. Then the held answer must still reach us.
	 */
#ifdef SHOAL_TEST_HOOKS /* the 200 ms lifetime is the hook's; without it, ten minutes */
	{
		pid_t wpid = rt_slot_pid(cl.seg, 1);
		uint64_t ref;

		peer_expect(&peer, "holdserver rhold", "registered");
		assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "rhold", &again), 0);
		assert_int_equal(shoal_client_call_async(c, again, 1, "late", 4, &ref), 0);
		assert_true(wpid > 0);
		assert_int_equal(kill(wpid, SIGSTOP), 0);
		rt_wait_pid_state(wpid, 'T');
		peer_expect(&peer, "callshort counter held", "timeout");
		rt_wait_err(
			&run,
			"call from tpeer@127.0.0.1 to 'counter': no reply in 200 ms: forgotten");
		assert_int_equal(kill(wpid, SIGCONT), 0);
		peer_expect(&peer, "release rhold", "released");
		for (;;) {
			struct shoal_msg m;

			n = shoal_client_recv(c, &m, reply, sizeof(reply), TIMEOUT_MS);
			assert_true(n >= 0);
			if ((m.flags & SHOAL_MSG_REPLY) && m.ref == ref) {
				assert_int_equal(m.flags & SHOAL_MSG_ERROR, 0);
				assert_int_equal(m.len, 4);
				assert_memory_equal(reply, "late", 4);
				break;
			}
		}
	}
#endif
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "rsink", &sink), 0);
	assert_int_equal(shoal_client_cast(c, sink, 0, "to-beam", 7, TIMEOUT_MS), 0);
	peer_expect(&peer, "recv", "got to-beam");
	/*
	 * A remote handle in a group: a broadcast reaches the remote process; one with
	 * acknowledgements counts it acked once the gateway handed it to the distribution.
	 * Only remote handles join this way; the group goes with its last member.
	 */
	{
		struct shoal_round_result res = {0};
		shoal_handle_t echo_h;

		assert_int_equal(shoal_client_lookup(c, "echo", &echo_h), 0);
		assert_int_equal(shoal_client_remote_join(c, "rgroup", echo_h), -EINVAL);
		assert_int_equal(shoal_client_remote_join(c, "rgroup", sink), 0);
		assert_int_equal(shoal_client_broadcast(c, "rgroup", 0, "to-group", 8, TIMEOUT_MS),
				 1);
		peer_expect(&peer, "recv", "got to-group");
		assert_int_equal(
			shoal_client_broadcast_acked(c, "rgroup", 0, "acked", 5, TIMEOUT_MS, &res),
			0);
		assert_int_equal(res.members, 1);
		assert_int_equal(res.acked, 1);
		peer_expect(&peer, "recv", "got acked");
		/* a user's message of the vote's type is a user's message: a cast, acked */
		memset(&res, 0, sizeof(res));
		assert_int_equal(shoal_client_broadcast_acked(c, "rgroup", SHOAL_T_VOTE, "v", 1,
							      TIMEOUT_MS, &res),
				 0);
		assert_int_equal(res.acked, 1);
		peer_expect(&peer, "recv", "got v");
		assert_int_equal(shoal_client_remote_leave(c, "rgroup", sink), 0);
		assert_int_equal(shoal_client_broadcast(c, "rgroup", 0, "x", 1, TIMEOUT_MS),
				 -ENOENT);
	}
	/*
	 * A remote member votes on a proposal: the gateway asks it with a gen_server call
	 * {shoal_vote, Name, Value, Version}; yes commits the value, no rejects it.
	 */
	{
		struct shoal_proposal_result pr = {0};
		struct shoal_var_value val;
		shoal_handle_t yes_h, no_h;
		shoal_var_t var;
		int64_t v42 = 42, v7 = 7;

		peer_expect(&peer, "voter ryes yes", "registered");
		peer_expect(&peer, "voter rno no", "registered");
		assert_int_equal(shoal_client_var_create(c, "rvar", SHOAL_VAR_INT, &var), 0);
		assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "ryes", &yes_h), 0);
		assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "rno", &no_h), 0);
		assert_int_equal(shoal_client_remote_join(c, "rvoters", yes_h), 0);
		assert_int_equal(shoal_client_propose(c, "rvar", SHOAL_VAR_INT, &v42, 8, "rvoters",
						      SHOAL_RULE_UNANIMOUS, 0, TIMEOUT_MS, &pr),
				 0);
		assert_int_equal(pr.outcome, SHOAL_PROPOSAL_COMMITTED);
		assert_int_equal(pr.yes, 1);
		peer_expect(&peer, "waitvote", "voted rvar 42");
		assert_int_equal(shoal_client_var_read_name(c, "rvar", &val), 0);
		assert_int_equal(val.num.i, 42);
		assert_int_equal(shoal_client_remote_join(c, "rvoters", no_h), 0);
		assert_int_equal(shoal_client_propose(c, "rvar", SHOAL_VAR_INT, &v7, 8, "rvoters",
						      SHOAL_RULE_UNANIMOUS, 0, TIMEOUT_MS, &pr),
				 -ECANCELED);
		assert_int_equal(pr.yes, 1);
		assert_int_equal(pr.no, 1);
		assert_int_equal(shoal_client_var_read_name(c, "rvar", &val), 0);
		assert_int_equal(val.num.i, 42);
		/*
		 * A remote process subscribed to the variable: each change comes to it as
		 * {shoal_var, Name, Value, Version} (the forwarder passes it to the peer);
		 * after the unsubscription, none. Only remote handles subscribe this way.
		 */
		{
			struct shoal_var_set set = {.var = var,
						    .type = SHOAL_VAR_INT,
						    .len = 8,
						    .data = &v7,
						    .expect = SHOAL_VAR_ANY};
			uint64_t sref;

			assert_int_equal(
				shoal_client_remote_var_subscribe(c, sink, "rvar", 0, &sref), 0);
			assert_int_equal(
				shoal_client_remote_var_subscribe(c, var, "rvar", 0, &sref),
				-EINVAL);
			assert_int_equal(shoal_client_var_update(c, &set, 1, NULL, TIMEOUT_MS), 0);
			peer_expect(&peer, "waitvar", "var rvar 7 2");
			assert_int_equal(shoal_client_remote_var_unsubscribe(c, sink, sref), 0);
			assert_int_equal(shoal_client_remote_var_unsubscribe(c, sink, sref),
					 -ENOENT);
		}
	}
	/*
	 * A remote member in an allocation round: asked with a gen_server call
	 * {shoal_demand, Resource, Capacity}, its answer is its demand; its share comes to it
	 * as {shoal_share, Resource, Share, Demand, Capacity}.
	 */
	{
		struct shoal_alloc_result ar = {0};
		shoal_handle_t dh;

		peer_expect(&peer, "demander rdem 30", "registered");
		assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "rdem", &dh), 0);
		assert_int_equal(shoal_client_remote_join(c, "rallot", dh), 0);
		assert_int_equal(
			shoal_client_allocate(c, "rallot", "gpus", 100, NULL, TIMEOUT_MS, &ar), 0);
		assert_int_equal(ar.members, 1);
		assert_int_equal(ar.reported, 1);
		assert_int_equal(ar.demand, 30);
		assert_int_equal(ar.delivered, 1);
		peer_expect(&peer, "waitshare", "share gpus 30 30 100");
	}
	/* from an agent: a call (shoal_call_async(), its reply a message) and a cast */
	{
		static const char rq[] = "R tpeer@127.0.0.1 recho from-agent";
		static const char cq[] = "C tpeer@127.0.0.1 rsink agent-cast";
		shoal_handle_t rounder;

		assert_int_equal(shoal_client_lookup(c, "rounder", &rounder), 0);
		n = shoal_client_call(c, rounder, 1, rq, sizeof(rq) - 1, reply, sizeof(reply) - 1,
				      TIMEOUT_MS);
		assert_true(n > 0);
		reply[n] = 0;
		assert_string_equal(reply, "ok from-agent");
		n = shoal_client_call(c, rounder, 1, cq, sizeof(cq) - 1, reply, sizeof(reply) - 1,
				      TIMEOUT_MS);
		assert_true(n > 0);
		reply[n] = 0;
		assert_string_equal(reply, "cast 0");
		peer_expect(&peer, "recv", "got agent-cast");
	}
	/* bad names and nodes */
	assert_int_equal(shoal_client_remote(c, "nohost", "x", &again), -EINVAL);
	assert_int_equal(shoal_client_remote(c, "a@b@c", "x", &again), -EINVAL);
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "", &again), -EINVAL);
	/*
	 * A node nobody runs: the handle ends as the gateway takes it up (it cannot connect to
	 * resolve the name); its monitor hears why, or, when the end came first, the monitor
	 * is refused because the handle is over.
	 */
	assert_int_equal(shoal_client_remote(c, "nobody@127.0.0.1", "x", &nowhere), 0);
	r = shoal_client_monitor(c, nowhere, &nref);
	if (r == 0) {
		d = next_down(c);
		assert_true(d.target == nowhere && d.ref == nref && !d.up);
		assert_int_equal(d.reason, SHOAL_DOWN_NOCONNECTION);
	} else {
		assert_true(r == -ENOENT || r == -ESTALE);
	}
	rt_wait_err(&run, "cannot connect to node nobody@127.0.0.1");
	/* a name nobody has on the node: DOWN noproc (an Erlang monitor's answer) */
	r = shoal_client_remote(c, "tpeer@127.0.0.1", "unregistered", &nowhere);
	assert_int_equal(r, 0);
	r = shoal_client_monitor(c, nowhere, &nref);
	if (r == 0) {
		d = next_down(c);
		assert_true(d.target == nowhere && d.ref == nref);
		assert_int_equal(d.reason, SHOAL_DOWN_NOPROC);
	} else {
		assert_true(r == -ENOENT || r == -ESTALE);
	}
	/*
	 * The named process's own exit: the handle's monitor hears it (the gateway monitors the
	 * name on the node), its reason from the exit's (killed: a crash).
	 */
	peer_expect(&peer, "forwarder rvictim", "registered");
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "rvictim", &again), 0);
	assert_int_equal(shoal_client_monitor(c, again, &nref), 0);
	/* a cast through it arrives: the gateway has taken the handle up (and monitors) */
	assert_int_equal(shoal_client_cast(c, again, 0, "hello", 5, TIMEOUT_MS), 0);
	peer_expect(&peer, "recv", "got hello");
	peer_expect(&peer, "kill rvictim", "killed");
	d = next_down(c);
	assert_true(d.target == again && d.ref == nref && !d.up);
	assert_int_equal(d.reason, SHOAL_DOWN_CRASH);
	/* the BEAM node goes: its handles' monitors hear it */
	assert_int_equal(shoal_client_monitor(c, h, &mref), 0);
	peer_stop(&peer);
	d = next_down(c);
	assert_true(d.target == h && d.ref == mref);
	assert_int_equal(d.reason, SHOAL_DOWN_NOCONNECTION);
	/* back: a new handle reaches it */
	peer_start(&peer, "tpeer", cookie);
	peer_expect(&peer, "ping", "ping pong");
	peer_expect(&peer, "echoserver recho", "registered");
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "recho", &again), 0);
	assert_true(again != h);
	assert_int_equal(
		shoal_client_call(c, again, 1, "back", 4, reply, sizeof(reply), TIMEOUT_MS), 4);
	assert_memory_equal(reply, "back", 4);
	shoal_client_close(c);
}

/*
 * Shoal to shoal: a client and an agent of this instance call an agent of a second instance
 * (a node of its own) through remote handles; that node's gateway killed, the handle's
 * monitor hears DOWN noconnection, and a new handle reaches the restarted gateway; that
 * agent's worker killed, the new handle's monitor hears DOWN crash.
 */
static void test_dist_shoal_to_shoal(void **state)
{
	char cfg[1024], node2[64], req[128], reply[64], err[256];
	struct shoal_client *c;
	struct rt_client cl2;
	struct rt_run run2;
	shoal_handle_t h, rounder, h2;
	struct shoal_down d;
	uint64_t mref;
	pid_t gw2;
	int n;

	(void)state;
	snprintf(node2, sizeof(node2), "shoalb%d@127.0.0.1", (int)getpid());
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\n[agent echo]\ntype = echo\nname = becho\n"
		 "[dist]\nnode = %s\ncookie_file = %s\n",
		 node2, cookie_path);
	rt_start(&run2, "t-dist-", "s2s", cfg, NULL);
	rt_wait_ready(&run2);
	rt_client_open(&cl2, run2.inst);
	WAIT_FOR(cl2.seg, gateway_pid(cl2.seg) != 0);
	assert_int_equal(shoal_client_open(run.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_remote(c, node2, "becho", &h), 0);
	n = shoal_client_call(c, h, 1, "s2s", 3, reply, sizeof(reply), TIMEOUT_MS);
	assert_int_equal(n, 3);
	assert_memory_equal(reply, "s2s", 3);
	/* an agent of ours, through the same handle */
	assert_int_equal(shoal_client_lookup(c, "rounder", &rounder), 0);
	n = snprintf(req, sizeof(req), "R %s becho agent-s2s", node2);
	n = shoal_client_call(c, rounder, 1, req, (uint32_t)n, reply, sizeof(reply) - 1,
			      TIMEOUT_MS);
	assert_true(n > 0);
	reply[n] = 0;
	assert_string_equal(reply, "ok agent-s2s");
	/* the other gateway answers for rex (the rpc server's call protocol, as remote handles
	 * resolve names): erlang:whereis/1, and {badrpc, _} to other calls, which must not wait
	 * for ever (OTP 25's rpc:call/4 itself says notsup to a C node: it spawns instead) */
	{
		char line[256];

		n = snprintf(req, sizeof(req), "rpc %s erlang whereis becho\n", node2);
		assert_true(write(peer.in, req, (size_t)n) == n);
		peer_line(&peer, line, sizeof(line));
		if (!strstr(line, "rpc <"))
			fail_msg("rpc:call of erlang:whereis(becho) on the shoal node: %s", line);
		n = snprintf(req, sizeof(req), "rpc %s erlang node\n", node2);
		assert_true(write(peer.in, req, (size_t)n) == n);
		peer_line(&peer, line, sizeof(line));
		if (!strstr(line, "rpc {badrpc,"))
			fail_msg("rpc:call of erlang:node() on the shoal node: %s", line);
	}
	/* its gateway killed: our handle's monitor hears the connection go */
	assert_int_equal(shoal_client_monitor(c, h, &mref), 0);
	gw2 = gateway_pid(cl2.seg);
	rt_kill_and_wait(gw2);
	d = next_down(c);
	assert_true(d.target == h && d.ref == mref);
	assert_int_equal(d.reason, SHOAL_DOWN_NOCONNECTION);
	/* restarted: a new handle reaches it */
	WAIT_FOR(cl2.seg, gateway_pid(cl2.seg) != 0 && gateway_pid(cl2.seg) != gw2);
	assert_int_equal(shoal_client_remote(c, node2, "becho", &h2), 0);
	assert_true(h2 != h);
	n = shoal_client_call(c, h2, 1, "again", 5, reply, sizeof(reply), TIMEOUT_MS);
	assert_int_equal(n, 5);
	/* the agent's own end: its worker SIGKILLed, our handle's monitor hears it (the other
	 * gateway answers the monitor by name its proxy made) */
	assert_int_equal(shoal_client_monitor(c, h2, &mref), 0);
	rt_kill_and_wait(rt_slot_pid(cl2.seg, 1));
	d = next_down(c);
	assert_true(d.target == h2 && d.ref == mref && !d.up);
	assert_int_equal(d.reason, SHOAL_DOWN_CRASH);
	shoal_client_close(c);
	rt_client_close(&cl2);
	rt_stop(&run2);
}

static void test_dist_gateway_restarted(void **state)
{
	pid_t gw = gateway_pid(cl.seg);
	struct shoal_client *c;
	shoal_handle_t h;
	struct shoal_down d;
	uint64_t mref;
	char err[256];

	(void)state;
	assert_true(gw > 0);
	/* a remote handle, monitored: the gateway's death ends it (the supervisor's repair) */
	assert_int_equal(shoal_client_open(run.inst, &c, err, sizeof(err)), 0);
	peer_expect(&peer, "echoserver rgw", "registered");
	assert_int_equal(shoal_client_remote(c, "tpeer@127.0.0.1", "rgw", &h), 0);
	assert_int_equal(shoal_client_monitor(c, h, &mref), 0);
	peer_expect(&peer, "monitor", "monitoring");
	rt_kill_and_wait(gw);
	d = next_down(c);
	assert_true(d.target == h && d.ref == mref);
	assert_int_equal(d.reason, SHOAL_DOWN_NOCONNECTION);
	shoal_client_close(c);
	peer_expect(&peer, "waitdown", "down");
	/* the process behind the handle lives on: a handle shares no fate with it */
	peer_expect(&peer, "alive rgw", "alive true");
	WAIT_FOR(cl.seg, gateway_pid(cl.seg) != 0 && gateway_pid(cl.seg) != gw);
	rt_wait_err(&run, "was killed by signal 9 (KILL); restarting it");
	peer_expect(&peer, "call echo again", "reply again");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dist_cast_reaches_agent),
		cmocka_unit_test(test_dist_call_echo),
		cmocka_unit_test(test_dist_call_term_reply),
		cmocka_unit_test(test_dist_cast_burst_not_dropped),
		cmocka_unit_test(test_dist_call_missing_name),
		cmocka_unit_test(test_dist_oversized_rejected),
		cmocka_unit_test(test_dist_malformed_rejected),
		cmocka_unit_test(test_dist_unanswered_call_expires),
		cmocka_unit_test(test_dist_ticks_answered),
		cmocka_unit_test(test_dist_wrong_cookie_refused),
		cmocka_unit_test(test_dist_send_to_beam),
		cmocka_unit_test(test_dist_send_to_shoal_node),
		cmocka_unit_test(test_dist_call_node),
		cmocka_unit_test(test_dist_bench_runs),
		cmocka_unit_test(test_dist_run_node_options),
		cmocka_unit_test(test_dist_silent_peer_closed),
		cmocka_unit_test(test_dist_inspect_shows_gateway),
		cmocka_unit_test(test_dist_pid_link_monitor),
		cmocka_unit_test(test_dist_link_reasons),
		cmocka_unit_test(test_dist_remote_handles),
		cmocka_unit_test(test_dist_shoal_to_shoal),
		cmocka_unit_test(test_dist_gateway_restarted),
	};

	if (!is_on_path("erl")) {
		/* meson's TAP protocol reads a plan of 0 with SKIP as skipped (and 77 as failed) */
		printf("1..0 # SKIP no `erl` on PATH: install erlang-nox to test against a BEAM "
		       "node\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}

#else

int main(void)
{
	printf("1..0 # SKIP built without libei (erlang-dev): -Ddist is disabled or libei is "
	       "absent\n");
	return 0;
}

#endif
