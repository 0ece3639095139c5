%% shoal: Erlang (and Elixir) helpers for the agents of a shoal node (docs/dist.md).
%%
%% A shoal instance with a [dist] section is a node of the cluster; its agents are
%% addressed by name ({Name, Node} ! Msg, gen_server:call({Name, Node}, Req)) or by pid.
%% Each incarnation of an agent has a pid of the shoal node (a restarted agent is a new
%% process, as in OTP). The gateway answers links to those pids and sends an exit signal
%% when the incarnation ends, and answers erlang:monitor/2 (with [dist] monitors = yes, the
%% default). monitor/2 below, a monitor built on a link from a helper process, is kept for
%% nodes run with monitors = no, which offer none.
%%
%% Compile it with `erlc shoal.erl` (or copy it into a project); from Elixir, :shoal.
-module(shoal).
-compile({no_auto_import, [monitor/2, demonitor/1]}).
-export([whereis/2, monitor/2, demonitor/1]).

-define(SERVICE, shoal_gateway).

%% The pid of the current incarnation of the agent registered as Name (an atom or a
%% binary) on shoal node Node, or undefined. A call to the node's gateway (5 s timeout).
-spec whereis(atom() | binary(), node()) -> pid() | undefined.
whereis(Name, Node) ->
    gen_server:call({?SERVICE, Node}, {whereis, Name}, 5000).

%% Monitor an agent's incarnation: Target is its pid, or {Name, Node}, resolved now with
%% whereis/2. Returns a reference; the calling process later gets exactly one
%% {'DOWN', Ref, process, Pid, Reason} as from erlang:monitor/2: Reason is killed (its
%% worker died), error (a callback failed; it restarts as a new pid), failed (removed past
%% its restart intensity), normal (stopped on request), noproc (no such incarnation), or
%% noconnection (the connection to the node was lost). demonitor/1 cancels it.
-spec monitor(process, pid() | {atom() | binary(), node()}) -> reference().
monitor(process, {Name, Node}) ->
    case catch whereis(Name, Node) of
        Pid when is_pid(Pid) -> monitor(process, Pid);
        undefined -> down_now({Name, Node}, noproc);
        _ -> down_now({Name, Node}, noconnection)
    end;
monitor(process, Pid) when is_pid(Pid) ->
    Caller = self(),
    Ref = make_ref(),
    Helper = spawn(fun() -> watch(Caller, Ref, Pid) end),
    put({?MODULE, Ref}, Helper),
    %% in place when we return, as erlang:monitor/2's: a death after this is its reason,
    %% not noproc (the helper's link has reached the gateway; see watch/3)
    receive {linked, Ref} -> ok after 5000 -> ok end,
    Ref.

%% Cancel a monitor from monitor/2: no 'DOWN' for it comes after this returns (one that
%% came already is flushed). true.
-spec demonitor(reference()) -> true.
demonitor(Ref) ->
    case erase({?MODULE, Ref}) of
        undefined -> ok;
        Helper ->
            %% the helper ends on stop, or has ended having sent the 'DOWN': either way
            %% its own 'DOWN' comes after anything it sent us
            HelperMon = erlang:monitor(process, Helper),
            Helper ! {stop, Ref},
            receive {'DOWN', HelperMon, process, Helper, _} -> ok end
    end,
    receive {'DOWN', Ref, process, _, _} -> true after 0 -> true end.

down_now(Target, Reason) ->
    Ref = make_ref(),
    self() ! {'DOWN', Ref, process, Target, Reason},
    Ref.

%% The helper: linked to the agent's pid, trapping exits, watching its caller.
watch(Caller, Ref, Pid) ->
    process_flag(trap_exit, true),
    CallerMon = erlang:monitor(process, Caller),
    link(Pid),
    %% a call to the gateway after the link, on the same connection: answered once the
    %% gateway has taken the link (it reads a connection in order)
    catch gen_server:call({?SERVICE, node(Pid)}, {whereis, '$shoal_barrier'}, 5000),
    Caller ! {linked, Ref},
    receive
        {'EXIT', Pid, Reason} -> Caller ! {'DOWN', Ref, process, Pid, Reason};
        {'DOWN', CallerMon, process, Caller, _} -> unlink(Pid);
        {stop, Ref} -> unlink(Pid)
    end.
