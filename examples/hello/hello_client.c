/*
 * A client program: attaches to a running instance, calls the agent named "greeter" and
 * prints its answer. Links libshoal:
 *     cc hello_client.c $(pkg-config --cflags --libs shoal) -o hello_client
 * Run: ./hello_client [INSTANCE] [NAME]
 */
#include <stdio.h>
#include <string.h>

#include <shoal/client.h>

int main(int argc, char **argv)
{
	const char *instance = argc > 1 ? argv[1] : NULL; /* NULL: $SHOAL_INSTANCE or default */
	const char *name = argc > 2 ? argv[2] : "world";
	struct shoal_client *c;
	shoal_handle_t greeter;
	char err[256], reply[128];
	int n;

	if (shoal_client_open(instance, &c, err, sizeof(err))) {
		fprintf(stderr, "hello_client: %s\n", err);
		return 2;
	}
	if (shoal_client_lookup(c, "greeter", &greeter)) {
		fprintf(stderr, "hello_client: no agent named 'greeter' (run hello.ini)\n");
		shoal_client_close(c);
		return 2;
	}
	n = shoal_client_call(c, greeter, 1, name, (uint32_t)strlen(name), reply, sizeof(reply) - 1,
			      5000);
	shoal_client_close(c);
	if (n < 0) {
		fprintf(stderr, "hello_client: call: %s\n", shoal_strerror(n));
		return 1;
	}
	reply[n < (int)sizeof(reply) - 1 ? n : (int)sizeof(reply) - 1] = 0;
	printf("%s\n", reply);
	return 0;
}
