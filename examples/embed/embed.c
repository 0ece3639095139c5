/*
 * An application embedding shoal (examples/embed/meson.build builds it with shoal as a
 * meson subproject): attach to a running instance, start an echo agent of its own, call it,
 * and stop it again, as a program that drives agents would.
 * Run: ./embed [INSTANCE]   (exit 0 when the agent answered with what it was sent)
 */
#include <stdio.h>
#include <string.h>

#include <shoal/client.h>

int main(int argc, char **argv)
{
	const char *instance = argc > 1 ? argv[1] : NULL; /* NULL: $SHOAL_INSTANCE or default */
	struct shoal_client *c;
	shoal_handle_t echo;
	int32_t worker;
	char err[256], reply[64];
	int n, rc = 1;

	if (shoal_client_open(instance, &c, err, sizeof(err))) {
		fprintf(stderr, "embed: %s\n", err);
		return 2;
	}
	/* hint 0, where -1: the least loaded worker; 5 s for the supervisor's answer */
	n = shoal_client_spawn(c, "echo", "embed-echo", 0, -1, &echo, &worker, 5000);
	if (n < 0) {
		fprintf(stderr, "embed: spawning an echo agent: %s\n", strerror(-n));
		shoal_client_close(c);
		return 2;
	}
	/* a call waits through the agent's start: it answers once its init has run */
	n = shoal_client_call(c, echo, 1, "ping", 4, reply, sizeof(reply) - 1, 5000);
	if (n == 4 && !memcmp(reply, "ping", 4)) {
		printf("embed: agent embed-echo on worker %d answered 'ping'\n", (int)worker);
		rc = 0;
	} else {
		fprintf(stderr, "embed: the call answered %d\n", n);
	}
	n = shoal_client_stop(c, NULL, echo, 5000);
	if (n < 0) {
		fprintf(stderr, "embed: stopping the agent: %s\n", strerror(-n));
		rc = 1;
	}
	shoal_client_close(c);
	return rc;
}
