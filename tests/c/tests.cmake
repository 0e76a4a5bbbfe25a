# One line per suite; helpers working in parallel each add their own line.
strata_add_test(test_policy)
strata_add_test(test_config)
strata_add_test(test_api BACKENDS memory redis memcached)
strata_add_test(test_redis)
strata_add_test(test_memcached)
strata_add_test(test_outage BACKENDS redis memcached)
strata_add_test(test_write BACKENDS memory redis memcached)
