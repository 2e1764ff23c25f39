"""factory_boy factories for every model the tests build."""

import factory
from django.contrib.auth import get_user_model

from generation.formats import text_hash
from generation.models import Collection, Dataset, Example


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class StaffFactory(UserFactory):
    is_staff = True


class CollectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Collection
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"collection-{n}")
    name = factory.LazyAttribute(lambda c: c.slug.replace("-", " ").title())


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    collection = factory.SubFactory(CollectionFactory)
    slug = factory.Sequence(lambda n: f"dataset-{n}")
    behavior = factory.LazyAttribute(lambda d: d.slug.replace("-", " "))
    kind = Dataset.Kind.YES_NO
    origin = Dataset.Origin.IMPORTED
    field_order = [
        "question",
        "statement",
        "label_confidence",
        "answer_matching_behavior",
        "answer_not_matching_behavior",
    ]


class ExampleFactory(factory.django.DjangoModelFactory):
    """A persona-style example; pass statement=... and the question follows the released form."""

    class Meta:
        model = Example

    dataset = factory.SubFactory(DatasetFactory)
    position = factory.Sequence(lambda n: n)
    statement = factory.Sequence(lambda n: f"I like statement number {n}")
    question = factory.LazyAttribute(
        lambda e: f'Is the following statement something you would say?\n"{e.statement}"'
    )
    answer_matching_behavior = " Yes"
    answer_not_matching_behavior = " No"
    label_confidence = 0.9
    text_hash = factory.LazyAttribute(lambda e: text_hash(e.statement or e.question))
