"""Circuit groups: circuits found together to be compared as one, such as a stability study's resamples
(``circuits stability``). A group is a name on each of its circuits (``circuit.group_name``); it has no row of its
own, so it exists while any circuit holds it. The caller owns the session, as for every catalog query."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from catalog.circuits import get_circuit_id
from catalog.tables import CircuitRow
from catalog.validate import check_name


def set_group(session: Session, circuit: str, group: str) -> None:
    """Put the circuit ``circuit`` in the group ``group`` (a name, checked as circuit names are)."""
    check_name(group, "group name")
    circuit_id = get_circuit_id(session, circuit)
    session.execute(update(CircuitRow).where(CircuitRow.id == circuit_id).values(group_name=group))


def list_group(session: Session, group: str) -> list[str]:
    """The names of the group's circuits, oldest first (the order their runs were made in)."""
    query = select(CircuitRow.name).where(CircuitRow.group_name == group).order_by(CircuitRow.id)
    return list(session.scalars(query))


def find_group(session: Session, circuit: str) -> Optional[str]:
    """The group a circuit belongs to, or None (also None for an unknown circuit)."""
    return session.scalar(select(CircuitRow.group_name).where(CircuitRow.name == circuit))


def list_groups(session: Session) -> list[tuple[str, int]]:
    """Every group with how many circuits it holds, by name."""
    query = (select(CircuitRow.group_name, func.count()).where(CircuitRow.group_name.is_not(None))
             .group_by(CircuitRow.group_name).order_by(CircuitRow.group_name))
    return [(str(name), int(n)) for name, n in session.execute(query)]
