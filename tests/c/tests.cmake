# One line per suite; helpers working in parallel each add their own line.
strata_add_test(test_backend BACKENDS memory redis memcached)
strata_add_test(test_redis)
strata_add_test(test_memcached)
