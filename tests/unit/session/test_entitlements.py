import os
import pwd

from spawners.session.entitlements import partition_limits, unix_groups, unrestricted


def test_users_outside_limited_groups_get_the_partition_limits(site):
    limits = partition_limits(site, {"factorylab-users"})
    assert limits["gpu"].max_gpus == 4 and limits["gpu"].max_walltime_seconds == 4 * 3600


def test_course_members_are_capped(site):
    limits = partition_limits(site, {"factorylab-users", "factorylab-course"})
    gpu = limits["gpu"]
    assert (gpu.max_gpus, gpu.max_cpus, gpu.max_memory_mib, gpu.max_walltime_seconds) == (
        1,
        4,
        8 * 1024,
        3600,
    )


def test_several_rules_give_the_most_generous_and_partition_lists_restrict(site):
    from spawners.site.cluster_sections import GroupLimit

    rules = {
        "one": GroupLimit(partitions=["cpu"], max_cpus=2),
        "two": GroupLimit(partitions=["cpu"], max_cpus=6),
    }
    widened = site.model_copy(update={"group_limits": rules})
    limits = partition_limits(widened, {"one", "two"})
    assert set(limits) == {"cpu"} and limits["cpu"].max_cpus == 6
    assert partition_limits(widened, {"one"})["cpu"].max_cpus == 2


def test_unrestricted_offers_every_profile(site):
    assert set(unrestricted(site).profiles) == set(site.profiles)


def test_unix_groups_of_a_real_account():
    me = pwd.getpwuid(os.getuid()).pw_name
    assert unix_groups(me)
    assert unix_groups("no-such-user-here") == frozenset()
