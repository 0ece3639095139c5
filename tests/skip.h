/* A cmocka skip that says why: the reason is printed before the test is marked skipped. */
#ifndef TESTS_SKIP_H
#define TESTS_SKIP_H

#define skip_because(reason)                                                                       \
	do {                                                                                       \
		print_message("[  SKIP    ] %s: %s\n", __func__, (reason));                        \
		skip();                                                                            \
	} while (0)

#endif
