from devquarry.report.build import build_report

__all__ = ["build_report"]
