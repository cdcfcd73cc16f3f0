"""The config DB: models, migrations, the one repository that touches it, destination options."""
