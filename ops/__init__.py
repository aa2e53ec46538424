"""Operations: health, metrics and the tools operators use."""
