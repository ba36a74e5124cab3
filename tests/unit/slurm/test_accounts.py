from spawners.site.cluster_sections import AccountSettings
from spawners.slurm.accounts import AccountDirectory, accounts_from_file
from spawners.slurm.client import SlurmError


class FakeClient:
    def __init__(self, answer):
        self.answer = answer
        self.calls = 0

    async def associations(self, user):
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


SETTINGS = dict(by_user={"demo01": ["solo"]}, by_group={"course": ["training"], "x": ["solo"]})


def test_file_lists_merge_user_and_groups_without_duplicates():
    settings = AccountSettings(**SETTINGS)
    assert accounts_from_file(settings, "demo01", ["x", "course"]) == ["solo", "training"]
    assert accounts_from_file(settings, "demo02", []) == []


async def test_slurm_answers_are_cached_per_user():
    client = FakeClient(["proj-a"])
    directory = AccountDirectory(client, AccountSettings(source="slurm"))
    assert await directory.accounts_for("demo01", []) == ["proj-a"]
    assert await directory.accounts_for("demo01", []) == ["proj-a"]
    assert client.calls == 1


async def test_auto_falls_back_to_the_file_and_stops_asking():
    client = FakeClient(SlurmError("You are not running a supported accounting_storage plugin"))
    directory = AccountDirectory(client, AccountSettings(source="auto", **SETTINGS))
    assert await directory.accounts_for("demo01", ["course"]) == ["solo", "training"]
    assert await directory.accounts_for("demo02", ["course"]) == ["training"]
    assert client.calls == 1
