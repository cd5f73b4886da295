"""A sending Postfix whose smtp(8) runs chrooted, as Debian's master.cf has it.

Debian ships master.cf with the chroot column ``y`` for smtp and relay, and
its init (``/usr/lib/postfix/configure-instance.sh``, run by
``postfix@.service`` before every start) copies resolv.conf, hosts,
services, nsswitch.conf, localtime and the NSS libraries into the queue
directory, which is smtp's root.  ``ChrootPostfix`` does the same: the
world's master.cf with smtp and relay chrooted, then Debian's own script run
for the instance inside $P-mta (so the resolv.conf it copies names the test
DNS), then ``postfix start``.
"""

from __future__ import annotations

from pathlib import Path

from .mta import PostfixInstance, write_settled
from .world import World, WorldError

__all__ = ["CONFIGURE_INSTANCE", "ChrootPostfix", "chroot_postfix"]

CONFIGURE_INSTANCE = Path("/usr/lib/postfix/configure-instance.sh")
CHROOTED = ("smtp", "relay")  # the services that ask smtp_tls_policy_maps


class ChrootPostfix(PostfixInstance):
    """A PostfixInstance whose smtp and relay services run chrooted."""

    def set_chroot(self, chroot: bool) -> None:
        """Set the chroot column of smtp and relay in master.cf (``y``/``n``);
        the next ``configure`` or ``postfix reload`` applies it."""
        lines = []
        for line in (self.etc / "master.cf").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 8 and fields[0] in CHROOTED and fields[1] == "unix":
                fields[4] = "y" if chroot else "n"
                line = " ".join(fields)
            lines.append(line)
        write_settled(self.etc / "master.cf", "\n".join(lines) + "\n")

    def chrooted_services(self) -> list[str]:
        return [
            f[0]
            for f in (
                ln.split() for ln in (self.etc / "master.cf").read_text().splitlines()
            )
            if len(f) >= 8 and f[4] == "y"
        ]

    def sync_chroot(self, world: World) -> None:
        """Debian's configure-instance.sh for this instance (MAIL_CONFIG)."""
        proc = world.run(
            "mta",
            [str(CONFIGURE_INSTANCE), "-"],
            env={"MAIL_CONFIG": str(self.etc)},
            timeout=60,
        )
        if proc.returncode != 0:
            raise WorldError(
                f"configure-instance.sh -> rc {proc.returncode}: "
                f"{proc.stdout}{proc.stderr}"
            )


def chroot_postfix(world: World, name: str, policy_maps: str) -> ChrootPostfix:
    """Start (once) the chrooted sending Postfix ``name`` in $P-mta; the world
    stops it when it closes."""
    known = world.postfixes.get(name)
    if isinstance(known, ChrootPostfix):
        known.configure(smtp_tls_policy_maps=policy_maps)
        return known
    instance = ChrootPostfix(
        world.mta,
        world.work / f"pf-{name}",
        world.pki.ca_pem,
        {"smtp_tls_policy_maps": policy_maps},
    )
    instance.set_chroot(True)
    instance.sync_chroot(world)
    world.postfixes[name] = instance
    instance.start()
    return instance
