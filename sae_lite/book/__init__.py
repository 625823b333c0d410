"""What only the chapters need: the rows their figures draw (`rows`), the figures (`plots`,
`figures`), the sliders (`widgets`), the claim boxes (`boxes`), the findings in words (`findings`)
and explanations computed from saved runs (`diagnostics`)."""
