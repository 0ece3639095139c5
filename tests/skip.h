/* A cmocka skip that says why: the reason is printed before the test is marked skipped. */
#ifndef TESTS_SKIP_H
#define TESTS_SKIP_H

#define skip_because(reason)                                                                       \
	do {                                                                                       \
		print_message("[  SKIP    ] %s: %s\n", __func__, (reason));                        \
		skip();                                                                            \
	} while (0)

/* Tests that drive the SHOAL_TEST_* fault-injection hooks skip in a build without them. */
#ifdef SHOAL_TEST_HOOKS
#define need_test_hooks() ((void)0)
#else
#define need_test_hooks()                                                                          \
	skip_because("built without -Dtest_hooks=true: the SHOAL_TEST_* hooks are compiled out")
#endif

#endif
