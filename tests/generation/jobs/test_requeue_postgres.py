"""The tests of test_requeue.py on PostgreSQL, where the job lock is an advisory lock held by a
database session of its own and a sweep reads who holds one from pg_locks."""

import pytest

from tests.generation.jobs.test_requeue import *  # noqa: F403 (the tests and their fixture, collected here again)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
