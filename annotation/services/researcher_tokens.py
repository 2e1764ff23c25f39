"""Researchers' API tokens: creation (the key is returned this once), revocation, and the look-up
that authenticates a request (annotation.researcher_api.ResearcherTokenAuthentication)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from annotation.models import ResearcherToken

# last_used_at is written at most this often per token: a request in between writes nothing.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Characters of the key kept for display ("mwe_" and 8 of the secret's 43).
PREFIX_LENGTH = len(ResearcherToken.PREFIX) + 8
MAX_TOKENS_PER_USER = 50


@dataclass(frozen=True)
class NewToken:
    token: ResearcherToken
    key: str  # the only copy: shown to the researcher once, never stored


def researcher_token_hash(*, key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def researcher_token_create(*, user: AbstractBaseUser, name: str) -> NewToken:
    """A new token for `user`, who must be active staff. Raises ValidationError for a blank or
    too long name, a user who is not staff, or one who has MAX_TOKENS_PER_USER live tokens."""
    name = name.strip()
    if not (user.is_authenticated and user.is_active and user.is_staff):
        raise ValidationError("Only researchers (active staff) hold API tokens.")
    if not name:
        raise ValidationError("Give the token a name, e.g. what it is for.")
    limit = ResearcherToken._meta.get_field("name").max_length
    if len(name) > limit:
        raise ValidationError(f"The name is longer than {limit} characters.")
    if ResearcherToken.objects.filter(user=user, revoked_at=None).count() >= MAX_TOKENS_PER_USER:
        raise ValidationError(f"You have {MAX_TOKENS_PER_USER} live tokens; revoke one first.")
    key = ResearcherToken.PREFIX + secrets.token_urlsafe(32)
    token = ResearcherToken.objects.create(
        user=user, name=name, prefix=key[:PREFIX_LENGTH], key_sha256=researcher_token_hash(key=key)
    )
    return NewToken(token=token, key=key)


def researcher_token_revoke(*, user: AbstractBaseUser, token_id: int) -> ResearcherToken:
    """Revoke one of `user`'s own live tokens; from now on it authenticates nothing. Raises
    ResearcherToken.DoesNotExist for another user's token, a revoked one or none."""
    token = ResearcherToken.objects.get(pk=token_id, user_id=user.pk, revoked_at=None)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return token


def researcher_token_authenticate(*, key: str, now=None) -> ResearcherToken | None:
    """The live token with this key, its user loaded; None for an unknown or revoked key. Whether the
    user may still use it (active staff) is the caller's check. Records the use, at most once per
    LAST_USED_RESOLUTION (one conditional UPDATE, which matches no row in between)."""
    if not key.startswith(ResearcherToken.PREFIX):
        return None
    # Looked up by the key's hash: the hash is what is stored, and comparing hashes in the database
    # leaks nothing useful about the key through timing.
    token = (
        ResearcherToken.objects.select_related("user")
        .filter(key_sha256=researcher_token_hash(key=key), revoked_at=None)
        .first()
    )
    if token is None:
        return None
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ResearcherToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at=None) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
