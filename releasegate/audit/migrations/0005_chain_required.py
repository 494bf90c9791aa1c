import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CREATE = """
CREATE OR REPLACE FUNCTION audit_auditchain_no_delete() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditchain rows are permanent: %% refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_auditchain_no_delete ON audit_auditchain;
CREATE TRIGGER audit_auditchain_no_delete
    BEFORE DELETE ON audit_auditchain
    FOR EACH ROW EXECUTE FUNCTION audit_auditchain_no_delete();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_auditchain_no_delete ON audit_auditchain;
DROP FUNCTION IF EXISTS audit_auditchain_no_delete();
"""


def forwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=())


def backwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=())


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_events_onto_chains")]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="chain",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="audit.auditchain",
            ),
        ),
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ["id"]}),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.UniqueConstraint(
                fields=("chain", "seq"), name="audit_event_chain_seq_unique"
            ),
        ),
        migrations.DeleteModel(name="AuditHead"),
        # The head row's UPDATE is how appending works; its DELETE would hide a whole chain.
        migrations.RunPython(forwards, backwards),
    ]
