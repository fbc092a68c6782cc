"""One module per feature, each with an ``async def <feature>_section(db, out)``."""
