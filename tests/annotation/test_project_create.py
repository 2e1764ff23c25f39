"""Project creation by researchers: the "New project" page (annotation/forms.py, views.py) and the
create_project command, which validates through the same form. Bad input names the problem and
creates nothing."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.models import AnnotationProject, ProjectItem
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = reverse("annotation:project-create")


@pytest.fixture
def datasets():
    """Two datasets of 7 'Yes' and 3 'No' examples each, and one without examples."""
    made = DatasetFactory.create_batch(2)
    for dataset in made:
        ExampleFactory.create_batch(7, dataset=dataset, answer_matching_behavior=" Yes")
        ExampleFactory.create_batch(3, dataset=dataset, answer_matching_behavior=" No")
    return made


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(StaffFactory())
    return client


def form_data(chosen, **overrides):
    data = {
        "name": "Power validation",
        "slug": "power",
        "datasets": [d.slug for d in chosen],
        "per_dataset": "",
        "per_label": "",
        "seed": "0",
        "overlap": "3",
        "lease_seconds": "300",
        "instructions": "Rate **each** example.",
        "gold_rate": "0.1",
        "gold_threshold": "0.7",
    }
    data.update(overrides)
    return data


def test_staff_create_a_project_over_all_examples(staff_client, datasets):
    assert staff_client.get(URL).status_code == 200
    response = staff_client.post(URL, form_data(datasets))
    project = AnnotationProject.objects.get(slug="power")
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    assert project.items.count() == 20
    assert set(project.datasets.all()) == set(datasets)
    assert (project.overlap, project.lease_seconds, project.gold_rate, project.gold_threshold) == (
        3,
        300,
        0.1,
        0.7,
    )
    assert project.instructions == "Rate **each** example."
    assert project.created_by.is_staff
    page = staff_client.get(project.get_absolute_url())
    assert b"Created Power validation: 20 items." in page.content
    assert b"<strong>each</strong>" in page.content


def test_stratified_sample_per_dataset_and_label(staff_client, datasets):
    staff_client.post(URL, form_data(datasets, per_label="5", seed="4", overlap="2"))
    project = AnnotationProject.objects.get(slug="power")
    counts = {}
    for item in project.items.select_related("example"):
        key = (item.example.dataset_id, item.example.answer_matching_behavior)
        counts[key] = counts.get(key, 0) + 1
    # 5 of the 7 "Yes" and all 3 "No" in each dataset; every item carries the overlap.
    assert sorted(counts.values()) == [3, 3, 5, 5]
    assert set(project.items.values_list("overlap", flat=True)) == {2}


def test_a_sample_per_dataset_balanced_over_labels(staff_client, datasets):
    """The paper rated 100 examples per dataset: N per dataset, split as evenly as the labels allow."""
    page = staff_client.get(URL).content.decode()
    assert "N per dataset, balanced over labels" in page and "the paper rated 100 per dataset" in page
    staff_client.post(URL, form_data(datasets, per_dataset="6", seed="4"))
    project = AnnotationProject.objects.get(slug="power")
    counts = {}
    for item in project.items.select_related("example"):
        key = (item.example.dataset_id, item.example.answer_matching_behavior)
        counts[key] = counts.get(key, 0) + 1
    # 7 "Yes" and 3 "No" per dataset: 3 and 3 of 6; of 9, "No" has only 3, so "Yes" gets 6.
    assert sorted(counts.values()) == [3, 3, 3, 3]
    staff_client.post(URL, form_data(datasets, slug="nine", per_dataset="9", seed="4"))
    nine = AnnotationProject.objects.get(slug="nine")
    assert nine.items.filter(example__answer_matching_behavior=" No").count() == 6
    assert nine.items.filter(example__answer_matching_behavior=" Yes").count() == 12


def test_the_per_label_help_no_longer_cites_the_papers_100(staff_client):
    from annotation.forms import ProjectCreateForm

    assert "100" not in str(ProjectCreateForm.base_fields["per_label"].help_text)
    assert "paper" not in str(ProjectCreateForm.base_fields["per_label"].help_text)


def test_instructions_are_stored_as_written_and_shown_safely(staff_client, datasets):
    staff_client.post(
        URL, form_data(datasets, instructions="<script>alert(1)</script> [x](javascript:alert(1))")
    )
    page = staff_client.get(AnnotationProject.objects.get(slug="power").get_absolute_url())
    assert b"<script>alert(1)" not in page.content
    assert b'href="javascript:' not in page.content


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "not a slug"}, "slug"),
        ({"name": ""}, "name"),
        ({"datasets": []}, "datasets"),
        ({"datasets": ["no-such-dataset"]}, "datasets"),
        ({"per_label": "0"}, "per_label"),
        ({"per_label": "many"}, "per_label"),
        ({"per_dataset": "0"}, "per_dataset"),
        ({"per_dataset": "10", "per_label": "5"}, "per_label"),
        ({"overlap": "0"}, "overlap"),
        ({"overlap": "101"}, "overlap"),
        ({"overlap": "2.5"}, "overlap"),
        ({"lease_seconds": "5"}, "lease_seconds"),
        ({"gold_rate": "1.5"}, "gold_rate"),
        ({"gold_rate": "-0.1"}, "gold_rate"),
        ({"gold_rate": "nan"}, "gold_rate"),
        ({"gold_threshold": "2"}, "gold_threshold"),
        ({"seed": "-1"}, "seed"),
        ({"instructions": "x" * 20_001}, "instructions"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(staff_client, datasets, overrides, field):
    response = staff_client.post(URL, form_data(datasets, **overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not AnnotationProject.objects.exists()
    assert not ProjectItem.objects.exists()


def test_taken_slug_and_datasets_without_examples_are_refused(staff_client, datasets):
    assert staff_client.post(URL, form_data(datasets)).status_code == 302
    again = staff_client.post(URL, form_data(datasets, name="Again"))
    assert "already exists" in str(again.context["form"].errors["slug"])
    empty = DatasetFactory()
    response = staff_client.post(URL, form_data([empty], slug="empty"))
    assert "no examples" in str(response.context["form"].errors["datasets"])
    unlabelled = DatasetFactory(slug="winogender-like")
    ExampleFactory(dataset=unlabelled, answer_matching_behavior="", answer_not_matching_behavior=None)
    response = staff_client.post(URL, form_data([datasets[0], unlabelled], slug="unlabelled"))
    assert "No answers to choose from in winogender-like" in str(response.context["form"].errors["datasets"])
    assert list(AnnotationProject.objects.values_list("slug", flat=True)) == ["power"]


def test_only_staff_create_projects(datasets):
    anonymous = Client()
    assert anonymous.get(URL).status_code == 302  # to the login page
    assert anonymous.post(URL, form_data(datasets)).status_code == 302
    user = Client()
    user.force_login(UserFactory())
    assert user.get(URL).status_code == 403
    assert user.post(URL, form_data(datasets)).status_code == 403
    assert not AnnotationProject.objects.exists()


def test_the_form_needs_its_csrf_token(datasets):
    client = Client(enforce_csrf_checks=True)
    client.force_login(StaffFactory())
    assert client.post(URL, form_data(datasets)).status_code == 403
    token = client.get(URL).context["csrf_token"]
    assert client.post(URL, {**form_data(datasets), "csrfmiddlewaretoken": token}).status_code == 302
    assert AnnotationProject.objects.count() == 1


def test_project_list_links_to_the_form(staff_client):
    assert URL.encode() in staff_client.get(reverse("annotation:project-list")).content


# --- The create_project command ---------------------------------------------------------------------


def test_command_creates_a_sampled_project(datasets, tmp_path: Path, capsys):
    instructions = tmp_path / "instructions.md"
    instructions.write_text("# Rate\nJudge against the *description*.", encoding="utf-8")
    args = ["--name", "Power", "--slug", "power", "--per-label", "5", "--seed", "4", "--overlap", "2"]
    for dataset in datasets:
        args += ["--dataset", dataset.slug]
    call_command("create_project", *args, "--instructions-file", str(instructions), "--gold-rate", "0.2")
    project = AnnotationProject.objects.get(slug="power")
    assert project.items.count() == 16
    assert (project.overlap, project.gold_rate) == (2, 0.2)
    assert project.instructions.startswith("# Rate")
    assert "Created project power: 16 items" in capsys.readouterr().out
    # The same seed draws the same sample as the page would.
    client = Client()
    client.force_login(StaffFactory())
    client.post(URL, form_data(datasets, slug="again", per_label="5", seed="4"))
    assert sorted(
        AnnotationProject.objects.get(slug="again").items.values_list("example_id", flat=True)
    ) == sorted(project.items.values_list("example_id", flat=True))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "nope"], "--dataset: No dataset nope."),
        (["--overlap", "0"], "--overlap:"),
        (["--lease-seconds", "1"], "--lease-seconds:"),
        (["--gold-rate", "2"], "--gold-rate:"),
        (["--per-label", "-3"], "--per-label:"),
        (["--per-dataset", "0"], "--per-dataset:"),
        (["--per-dataset", "4", "--per-label", "2"], "--per-label: Give a sample per dataset"),
        (["--slug", "bad slug"], "--slug:"),
    ],
)
def test_command_refuses_bad_input_and_creates_nothing(datasets, extra, message):
    args = ["--name", "P", "--slug", "p", "--dataset", datasets[0].slug, *extra]
    with pytest.raises(CommandError, match=message):
        call_command("create_project", *args)
    assert not AnnotationProject.objects.exists()
    assert not ProjectItem.objects.exists()


def test_command_samples_per_dataset_like_the_page(datasets):
    args = ["--name", "P", "--slug", "p", "--per-dataset", "5", "--seed", "3"]
    for dataset in datasets:
        args += ["--dataset", dataset.slug]
    call_command("create_project", *args)
    project = AnnotationProject.objects.get(slug="p")
    client = Client()
    client.force_login(StaffFactory())
    client.post(URL, form_data(datasets, slug="again", per_dataset="5", seed="3"))
    assert project.items.count() == 10
    assert sorted(
        AnnotationProject.objects.get(slug="again").items.values_list("example_id", flat=True)
    ) == sorted(project.items.values_list("example_id", flat=True))


def test_command_refuses_a_taken_slug_and_an_unreadable_file(datasets, tmp_path: Path):
    call_command("create_project", "--name", "P", "--slug", "p", "--dataset", datasets[0].slug)
    with pytest.raises(CommandError, match="--slug: A project named 'p' already exists."):
        call_command("create_project", "--name", "Q", "--slug", "p", "--dataset", datasets[0].slug)
    with pytest.raises(CommandError, match="cannot read"):
        call_command(
            "create_project",
            "--name",
            "Q",
            "--slug",
            "q",
            "--dataset",
            datasets[0].slug,
            "--instructions-file",
            str(tmp_path / "missing.md"),
        )
    assert list(AnnotationProject.objects.values_list("slug", flat=True)) == ["p"]


def test_a_slug_taken_after_the_forms_check_is_reported_and_nothing_is_created(
    staff_client, datasets, monkeypatch
):
    from annotation.forms import ProjectCreateForm

    staff_client.post(URL, form_data(datasets))
    # Another request takes the slug between the form's check and the insert.
    monkeypatch.setattr(ProjectCreateForm, "clean_slug", lambda form: form.cleaned_data["slug"])
    response = staff_client.post(URL, form_data(datasets, name="Second"))
    assert "already exists" in str(response.context["form"].errors["slug"])
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_project", "--name", "Third", "--slug", "power", "--dataset", datasets[0].slug)
    assert list(AnnotationProject.objects.values_list("name", flat=True)) == ["Power validation"]
    assert ProjectItem.objects.count() == 20
