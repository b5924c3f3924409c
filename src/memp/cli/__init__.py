"""The `memp` command. The app lives in `memp.cli.main`; this package stays empty so that the
command modules (including `memp.server.cli`) can import `memp.cli._common` in any order."""
