"""Revoke an API token at once, by key id or by the token itself."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_revoke


class Command(BaseCommand):
    help = "Revoke a token: give its key id (shown by create_token and in the admin) or the token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="the key id, or the whole token")

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["key"].strip()
        parts = key.split("_", 2)
        key_id = parts[1] if len(parts) == 3 and parts[0] in {"rgp", "rgs"} else key
        token = ApiToken.objects.filter(key_id=key_id).first()
        if token is None:
            raise CommandError(f"No token with key id {key_id!r}.")
        was_revoked = token.revoked_at is not None
        token_revoke(token=token, actor=Actor.system_actor())
        state = "was already revoked" if was_revoked else "revoked"
        self.stdout.write(f"{token.kind} token {token.name!r} (key id {token.key_id}) {state}")
